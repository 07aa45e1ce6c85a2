"""Flags that would do nothing: a value that cannot change this run is not accepted in silence.

A user who types ``--restart_warmup=0.5`` on a run that never restarts believes it acted. The rule
(docs/reliability.md, "Flags that would do nothing"):

* only a value other than the flag's default is checked: the default is what the run does anyway;
* typed on the command line, such a value is refused with one line (``experiments.train``);
* read from a ``--flagfile``, it is named in one warning line and the run goes on, because a
  flagfile shares settings across runs (a baseline and its multi-level run) where some act on one
  run only.

Each rule says why the flag cannot act, so the line tells the user what to change.
"""

from __future__ import annotations

from ml_resnet_tf.training.config import DEFAULTS, TrainConfig

NEVER_INTERPOLATES = "the run never interpolates (no --start_blocks or --interpolations)"


def no_ops(config: TrainConfig, backend: str) -> list[tuple[str, str]]:
    """``(flag, why it cannot act)`` for each flag of ``config`` that differs from its default and
    cannot change this run under the Keras ``backend``."""
    changed = {name for name, default in DEFAULTS.items() if getattr(config, name) != default}
    grows, restarts = config.num_interpolations > 0, config.lr_restart and bool(config.run_boundaries)
    rules = {
        "interpolation_rule": (not grows, NEVER_INTERPOLATES),
        "bn_reestimate": (not grows, NEVER_INTERPOLATES),
        "restart_warmup": (not restarts, "the learning rate never restarts (no --interpolate_at, or --nolr_restart)"),
        "restart_lr_max": (not restarts, "the learning rate never restarts (no --interpolate_at, or --nolr_restart)"),
        "lr_restart": (not config.run_boundaries, "the run has one cycle (no --interpolate_at): nothing restarts"),
        "interpolate_at": (bool(config.run_boundaries) and not grows and not config.lr_restart,
                           "with --nolr_restart a baseline has no cycle boundary for it to act on"),
        "sync_batch_norm": (config.strategy == "default",
                            "--strategy=default trains one replica, whose batch statistics are already global"),
        "lr_scaling": (config.effective_batch_size == config.spec.batch_size,
                       "the global batch is the paper's, so the linear factor is 1"),
        "jit_compile": (config.jit_compile == "true" and config.deterministic,
                        "Keras turns XLA off under --deterministic (not every XLA op is deterministic)"),
        "intra_op_threads": (backend != "tensorflow", f"TensorFlow's thread pools do not run the {backend} model"),
        "inter_op_threads": (backend != "tensorflow", f"TensorFlow's thread pools do not run the {backend} model"),
    }
    return [(name, why) for name, (idle, why) in rules.items() if name in changed and idle]


def typed_flags(argv: list[str], bool_flags: set[str]) -> set[str]:
    """The flag names written on the command line itself, not read from a ``--flagfile``."""
    names = set()
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            name = token[2:].split("=", 1)[0]
            names.add(name[2:] if name.startswith("no") and name[2:] in bool_flags else name)
    return names
