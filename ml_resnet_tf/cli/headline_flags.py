"""The flags and run queue that ``experiments.headline`` and ``experiments.headline_curve`` share.

Both train the same arms (``ml_resnet_tf.paper.headline``) with the same restart options; a restart
option names the runs' folder, so runs with and without it never mix.
"""

from __future__ import annotations

from absl import flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.runs import records
from ml_resnet_tf.transforms import interpolation

flags.DEFINE_list("rules", ["copy", "zero"], "Interpolation rules of the multi-level runs (copy is the paper's).")
flags.DEFINE_integer("seeds", 1, "Seeds per arm (0, 1, ...): every figure is given as mean ± standard deviation.")
flags.DEFINE_float("restart_warmup", 0.0, "Passed to every run, the baselines' included: epochs of learning-rate "
                                          "warm-up at each restart.")
flags.DEFINE_float("restart_lr_max", 0.0, "Passed to every run, the baselines' included (both arms keep one "
                                          "schedule, as the paper's do): the rate each restart starts at; 0: lr_max.")
flags.DEFINE_integer("bn_reestimate", 0, "Passed to the multi-level runs: batches that re-estimate batch-norm "
                                         "statistics after each interpolation.")
common.define_harness_flags("table, JSON and plot", "rewrites the table and plot from the runs that exist")
flags.register_validator("rules", lambda rules: bool(rules) and set(rules) <= set(interpolation.RULES),
                         f"--rules takes a comma-separated subset of {','.join(interpolation.RULES)}")
flags.register_validator("seeds", lambda n: 1 <= n <= 100, "--seeds must be between 1 and 100")
flags.register_validator("restart_warmup", lambda w: 0 <= w < 3, "--restart_warmup must be in [0, 3) epochs")
flags.register_validator("restart_lr_max", lambda r: 0 <= r <= 10, "--restart_lr_max must be in [0, 10]")
flags.register_validator("bn_reestimate", lambda n: n >= 0, "--bn_reestimate must not be negative")


def label(values) -> str:
    """The runs' folder suffix: data scale, then each restart option that is on."""
    return (common.scale_label(values.scale, values.train_subset)
            + (f"-warmup{values.restart_warmup:g}" if values.restart_warmup else "")
            + (f"-restartlr{values.restart_lr_max:g}" if values.restart_lr_max else "")
            + (f"-bn{values.bn_reestimate}" if values.bn_reestimate else ""))


def extra(values) -> tuple:
    """``(flags for every run, flags for the multi-level runs only)``: ``--bn_reestimate`` acts on an
    interpolation only, and ``experiments.train`` refuses a flag that cannot act on its run."""
    shared = ([f"--restart_warmup={values.restart_warmup:g}"] if values.restart_warmup else []) + \
        ([f"--restart_lr_max={values.restart_lr_max:g}"] if values.restart_lr_max else [])
    return (tuple(shared),
            tuple([f"--bn_reestimate={values.bn_reestimate}"] if values.bn_reestimate else []))


def train_and_load(planned: list, values) -> tuple:
    """Trains what is missing of ``planned`` (objects with ``title``, ``folder`` and ``flags``) unless
    ``--notrain``; returns ``(titles that failed, {folder: results or None})``."""
    failed = common.train_all([(run.title, run.folder, run.flags) for run in planned], values.scale,
                              values.train_subset, values.data_dir) if values.train else []
    return failed, {run.folder: records.load_results(run.folder) for run in planned}

