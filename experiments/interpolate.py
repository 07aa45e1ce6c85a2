"""What interpolating a trained run costs before any training step, per interpolation rule (issue 15).

    python -m experiments.interpolate --model_dir=runs/headline/multilevel-copy [--bn_batches=20]

Grows the run's model (``model.keras``, or its latest checkpoint) once with each rule of
``ml_resnet_tf.transforms.interpolation`` and reports the test accuracy before, right after, and after
re-estimating batch-norm statistics on ``--bn_batches`` batches of training images, with the top-1
agreement and relative logit change. It separates the interpolation's own cost (the function
changes) from what the learning-rate restart does next, and stale batch-norm statistics from the
rest. Writes ``interpolate.json`` beside the run (``MODEL_DIR/analysis``) and prints a table.
"""

import os

from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.paper import studies
from ml_resnet_tf.runs.records import write_json

flags.DEFINE_string("model_dir", None, "A run folder written by experiments.train.")
flags.DEFINE_string("output_dir", "", "Where interpolate.json goes; default: MODEL_DIR/analysis.")
flags.DEFINE_string("data_dir", "", "Where the data are; default: where the run found its own.")
flags.DEFINE_integer("num_images", 0, "Evaluate on the first N test images; 0 for all.")
flags.DEFINE_integer("bn_batches", 20, "Training batches for the batch-norm re-estimation.")
flags.mark_flag_as_required("model_dir")
flags.register_validator("num_images", lambda n: n >= 0, "--num_images must not be negative")
flags.register_validator("bn_batches", lambda n: n >= 1, "--bn_batches must be at least 1")
FLAGS = flags.FLAGS


def main(argv):
    reject_positional(argv)
    with common.one_line_errors():
        folder = common.analysis_dir(FLAGS.model_dir, FLAGS.output_dir)
        study = studies.interpolation_costs(FLAGS.model_dir, FLAGS.data_dir, FLAGS.num_images, FLAGS.bn_batches)
    print(f"\n{study['model']} ({odenet.format_blocks(study['blocks_per_stage'])}, h={study['step_size']:g}), "
          f"test accuracy {study['accuracy']:.2%} on {study['num_images']} images\n")
    print("| rule | grown to | h | test acc. after | after BN re-estimation | top-1 agreement | rel. logit change |")
    print("|---|---|---|---|---|---|---|")
    for r in study["rules"]:
        print(f"| {r['rule']} | {odenet.format_blocks(r['blocks_per_stage'])} | {r['step_size']:g} | "
              f"{r['accuracy_after']:.2%} | {r['accuracy_after_bn']:.2%} | {r['top1_agreement']:.2%} | "
              f"{r['relative_logit_change']:.3f} |")
    write_json(os.path.join(folder, "interpolate.json"), study)
    print(f"wrote {os.path.join(folder, 'interpolate.json')}")


if __name__ == "__main__":
    app.run(main)
