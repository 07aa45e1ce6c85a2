"""Trains a multi-level ResNet (Section 4) or one of its baselines (Section 5.2).

    python -m experiments.train --flagfile=experiments/configs/demo.cfg --model_dir=runs/demo

A multi-level run names its final model and where it starts, e.g.
``--model=resnet50 --start_blocks=2,2,2 --interpolate_at=60,110`` (ResNet-50-i);
without ``--start_blocks``/``--interpolations`` the model is trained as a baseline
whose learning rate still restarts at ``--interpolate_at``. Rerunning the same
command on the same ``--model_dir`` resumes an interrupted run and reports a
finished one.
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up noise out of the console

from absl import app, flags  # noqa: E402

from experiments import common  # noqa: E402
from ml_resnet_tf import data  # noqa: E402
from ml_resnet_tf.training import CHOICES, ConfigError, TrainConfig, train  # noqa: E402

DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


flags.DEFINE_enum("dataset", DEFAULTS["dataset"], list(data.DATASETS), "Dataset to train and test on.")
flags.DEFINE_string("data_dir", DEFAULTS["data_dir"],
                    "Folder with an offline copy in the standard binary layout (e.g. cifar-10-batches-bin/), "
                    "or a tensorflow_datasets data dir. Empty: tensorflow_datasets' default.")
flags.DEFINE_bool("download", DEFAULTS["download"], "Let tensorflow_datasets download a missing dataset.")
flags.DEFINE_string("model_dir", None, "Folder for checkpoints, TensorBoard logs and results.json.")
flags.DEFINE_string("model", DEFAULTS["model"],
                    "Final architecture: resnet{6n+2} or wresnet{6n+2}, e.g. resnet50 (8-8-8 blocks).")
flags.DEFINE_list("start_blocks", [], "Blocks per stage of the first cycle, e.g. 2,2,2 (multi-level run).")
flags.DEFINE_integer("interpolations", None, "Number of interpolations; an alternative to --start_blocks.")
flags.DEFINE_float("step_size", DEFAULTS["step_size"], "Explicit step size h of the first cycle (Eq. 2).")
flags.DEFINE_integer("epochs", DEFAULTS["epochs"], "Total training epochs.")
flags.DEFINE_list("interpolate_at", list(map(str, DEFAULTS["interpolate_at"])),
                  "Epochs where a new cycle starts: the learning rate restarts, a multi-level run interpolates.")
flags.DEFINE_integer("batch_size", DEFAULTS["batch_size"], "Batch size; 0 for the paper's (CIFAR 100, STL-10 32).")
flags.DEFINE_float("lr_max", DEFAULTS["lr_max"], "Learning rate at the start of every cycle (Eq. 9).")
flags.DEFINE_float("lr_min", DEFAULTS["lr_min"], "Learning rate at the end of every cycle (Eq. 9).")
flags.DEFINE_bool("lr_restart", DEFAULTS["lr_restart"],
                  "Restart the cosine learning rate at every cycle (Eq. 9); --nolr_restart anneals once "
                  "over the whole run (Fig. 10).")
flags.DEFINE_float("weight_decay", DEFAULTS["weight_decay"], "Coupled L2 weight decay on conv and dense kernels.")
flags.DEFINE_float("momentum", DEFAULTS["momentum"], "SGD momentum.")
flags.DEFINE_integer("seed", DEFAULTS["seed"], "Seed for initialization, data order and augmentation.")
flags.DEFINE_integer("train_subset", DEFAULTS["train_subset"], "Train on the first N images only; 0 for all.")
flags.DEFINE_float("scale", DEFAULTS["scale"],
                   "Multiply --epochs and --interpolate_at by this (rounded, at least 1) for a small trial run; "
                   "results.json records it.")
flags.DEFINE_bool("deterministic", DEFAULTS["deterministic"],
                  "Make TensorFlow ops deterministic (reproducible to the bit, slower on GPU).")
flags.DEFINE_enum("jit_compile", DEFAULTS["jit_compile"], list(CHOICES["jit_compile"]),
                  "XLA-compile the training step; auto: Keras' choice (on for GPUs without --strategy, off on CPUs).")
flags.DEFINE_enum("mixed_precision", DEFAULTS["mixed_precision"], list(CHOICES["mixed_precision"]),
                  "Keras dtype policy: mixed_float16 (GPUs; Keras scales the loss) or mixed_bfloat16 (TPUs, "
                  "recent GPUs and CPUs). The classifier and the loss stay in float32.")
flags.DEFINE_integer("steps_per_execution", DEFAULTS["steps_per_execution"],
                     "Training steps per call into the compiled function: fewer per-step overheads.")
flags.DEFINE_integer("data_threads", DEFAULTS["data_threads"],
                     "Images augmented in parallel by tf.data; 0 lets its autotuner choose.")
flags.DEFINE_enum("strategy", DEFAULTS["strategy"], list(CHOICES["strategy"]),
                  "tf.distribute strategy: default (one device), mirrored (all local devices), multi_worker "
                  "(TF_CONFIG), tpu. --batch_size is the global batch, split over the replicas.")
flags.DEFINE_bool("sync_batch_norm", DEFAULTS["sync_batch_norm"],
                  "Batch-norm statistics over all replicas instead of each replica's share of the batch.")
flags.DEFINE_enum("lr_scaling", DEFAULTS["lr_scaling"], list(CHOICES["lr_scaling"]),
                  "linear: multiply --lr_max and --lr_min by global batch / the paper's batch (Goyal et al. 2017).")
flags.mark_flag_as_required("model_dir")

FLAGS = flags.FLAGS


def config_from_flags(values):
    """A TrainConfig from flag values; raises ConfigError for any invalid combination."""
    values = {name: values[name] for name in DEFAULTS if name in values}
    for name in ("start_blocks", "interpolate_at"):
        try:
            values[name] = tuple(int(v) for v in values[name])
        except ValueError:
            raise ConfigError(f"--{name} takes whole numbers separated by commas, "
                              f"got {','.join(values[name])}") from None
    return TrainConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        with common.one_line_errors():
            train(config_from_flags(FLAGS.flag_values_dict()))
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun the same command to resume {FLAGS.model_dir} "
              "from its last finished epoch", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    app.run(main)
