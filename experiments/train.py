"""Trains a multi-level ResNet (Section 4) or one of its baselines (Section 5.2).

    python -m experiments.train --flagfile=experiments/configs/demo.cfg --model_dir=runs/demo

Every family trains the same way (``python -m experiments.models`` lists the presets).
A multi-level run names its final model and where it starts, e.g.
``--model=resnet50 --start_blocks=2,2,2 --interpolate_at=60,110`` (ResNet-50-i);
without ``--start_blocks``/``--interpolations`` the model is trained as a baseline
whose learning rate still restarts at ``--interpolate_at``. Rerunning the same
command on the same ``--model_dir`` resumes an interrupted run and reports a
finished one.
"""

import logging
import sys

import keras
from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.training import config, noops
from ml_resnet_tf.training.trainer import train

config.define_flags(flags)  # one flag per TrainConfig field: its default, help and choices
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def refuse_no_ops(run_config) -> None:
    """A flag that cannot act on this run: refused when typed, one warning line from a flagfile
    (``ml_resnet_tf.training.noops``)."""
    bools = {name for name in config.FIELDS if isinstance(config.DEFAULTS[name], bool)}
    typed = noops.typed_flags(sys.argv[1:], bools)
    for name, why in noops.no_ops(run_config, keras.backend.backend()):
        shown = FLAGS[name].serialize()
        if name in typed:
            raise config.ConfigError(f"{shown} cannot act on this run: {why}; drop it")
        print(f"warning: {shown} (from a flagfile) has no effect on this run: {why}", file=sys.stderr)


def main(argv):
    reject_positional(argv)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # tf.distribute logs every collective at INFO
    try:
        with common.one_line_errors():
            # Keras' progress bar redraws one line with escape codes: right in a terminal, hundreds of
            # garbled updates in a log file. Elsewhere, one line per epoch (verbose=2).
            run_config = config.from_flags(FLAGS.flag_values_dict())
            refuse_no_ops(run_config)
            train(run_config, verbose=1 if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun the same command to resume {FLAGS.model_dir} "
              "from its last finished epoch", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    app.run(main)
