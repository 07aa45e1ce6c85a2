"""Lesion study of a trained run (Section 3.3, after Veit et al. 2016).

    python -m experiments.lesion --model_dir=runs/resnet110 [--draws=5] [--num_images=10000]

On the test images it measures the error of the intact model and of real models
built without blocks (``ml_resnet_tf.transforms.lesion``): each single block deleted (a deleted
downsampling block keeps its parameter-free shortcut, ``Y_{j+1} = P(Y_j)``, and is
marked), k random shape-keeping blocks deleted for k = 1 ... N over ``--draws``
draws, and the blocks of each stage shuffled. It also checks Eq. 8 for every block:
deleting block j changes the feature map after it by exactly ``h * F(Y_j)``.
It writes ``lesion.json`` and ``lesion.png``.
"""

import os

from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import studies
from ml_resnet_tf.runs.records import write_json

flags.DEFINE_string("model_dir", None, "A run folder written by experiments.train.")
flags.DEFINE_string("output_dir", "", "Where lesion.json and lesion.png go; default: MODEL_DIR/analysis.")
flags.DEFINE_string("data_dir", "", "Where the test data are; default: where the run found its own.")
flags.DEFINE_integer("num_images", 0, "Evaluate on the first N test images; 0 for all.")
flags.DEFINE_integer("draws", 5, "Random draws for each number of deleted blocks and for each shuffle.")
flags.DEFINE_integer("max_removed", 0, "Delete up to this many random blocks; 0 for all that keep the shape.")
flags.DEFINE_integer("seed", 0, "Seed of the random deletions and shuffles.")
flags.mark_flag_as_required("model_dir")
for name in ("num_images", "max_removed"):
    flags.register_validator(name, lambda n: n >= 0, f"--{name} must not be negative")
flags.register_validator("draws", lambda n: n >= 1, "--draws must be at least 1")

FLAGS = flags.FLAGS


def main(argv):
    reject_positional(argv)
    with common.one_line_errors():
        folder = common.analysis_dir(FLAGS.model_dir, FLAGS.output_dir)
        study = studies.run_lesion(FLAGS.model_dir, FLAGS.data_dir, FLAGS.num_images, FLAGS.draws, FLAGS.seed,
                                   FLAGS.max_removed)
    write_json(os.path.join(folder, "lesion.json"), study)
    print(f"wrote {os.path.join(folder, 'lesion.json')}")
    print(f"wrote {studies.draw_lesion_figure(os.path.join(folder, 'lesion.png'), study)}")


if __name__ == "__main__":
    app.run(main)
