"""The dynamic-ensemble analysis of trained or running runs (Veit et al. 2016; Littwin & Wolf; notes §3-5).

    python -m experiments.ensemble --model_dir=runs/ml,runs/baseline --output_dir=results/ensemble \
        [--num_images=2000] [--path_samples=1000] [--ks=0,1,2] [--lesion_draws=3]

For each run (its ``model.keras``, or the latest checkpoint of a run still training) on the test
images, in inference mode (``ml_resnet_tf.analysis.ensemble`` has the definitions):

* every block's branch gain ``a_l = ||G|| / ||S(Y)||`` and its batch-norm scale (last ``|gamma|``, last
  kernel norm);
* the path-length distribution those gains imply, its mean, spread and share below half depth;
* the gradient at the first block along random paths of each length k, and the window of lengths
  carrying 90% of it;
* the lesion study beside it: gains against single-block deletions, path weight against k deletions;
* from results.json, the effective depth the trainer recorded at every epoch and around every
  interpolation.

It writes ``ensemble.json``, a summary table ``ensemble.md`` (also printed) and
``ensemble-{depth,distribution,gains,gradient,lesion}.png``.
"""


from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import ensemble_study
from ml_resnet_tf.training.config import ConfigError

common.define_analysis_flags("ensemble.json, ensemble.md and the PNGs")
flags.DEFINE_integer("path_samples", 1000, "Random paths sampled for each path length k.")
flags.DEFINE_list("ks", [], "Path lengths k to sample; default: every k from 0 to the number of blocks.")
flags.DEFINE_integer("lesion_draws", 3, "Random draws per number of deleted blocks in the cross-check; 0 skips it.")
flags.DEFINE_integer("batch_size", 128, "Images per forward and backward pass of the path sampling.")
flags.DEFINE_integer("seed", 0, "Seed of the sampled paths and deletions.")
flags.register_validator("lesion_draws", lambda n: n >= 0, "--lesion_draws must not be negative")
for _name in ("path_samples", "batch_size"):
    flags.register_validator(_name, lambda n: n >= 1, f"--{_name} must be at least 1")
flags.register_validator("ks", lambda ks: all(k.isdigit() for k in ks),
                         "--ks takes comma-separated path lengths, whole numbers from 0")

FLAGS = flags.FLAGS


def main(argv):
    reject_positional(argv)
    with common.one_line_errors():
        folder = common.analysis_dir(FLAGS.model_dir[0], FLAGS.output_dir)
        try:
            settings = ensemble_study.EnsembleSettings(FLAGS.num_images, FLAGS.path_samples,
                                                       tuple(int(k) for k in FLAGS.ks), FLAGS.seed,
                                                       FLAGS.lesion_draws, FLAGS.batch_size)
            entries = ensemble_study.run_ensemble(FLAGS.model_dir, settings, FLAGS.data_dir)
        except ValueError as error:  # path lengths beyond a run's blocks
            raise ConfigError(f"--ks: {error}") from None
    for path in ensemble_study.write_ensemble(folder, entries, settings):
        print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
