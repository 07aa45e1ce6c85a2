"""A run's configuration, declared once: the dataclass below is the source of the absl flags of
``experiments.train`` (:func:`define_flags`), their defaults and help, the validation, and the
README's flag table (:func:`flag_table`, checked by ``tests/test_readme.py``).

Each field's ``metadata`` holds its help text and, for an enum, its choices. Validation raises
ConfigError with one line naming the flag and the fix.
"""

from __future__ import annotations

import dataclasses
import math

from ml_resnet_tf.nets import odenet, registry
from ml_resnet_tf.training import data, distribute
from ml_resnet_tf.transforms import interpolation


class ConfigError(ValueError):
    """A run's settings are invalid or contradict each other; the message says which."""


def _field(default, help_text, choices=None):
    metadata = {"help": help_text, **({"choices": tuple(choices)} if choices else {})}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Cycle:
    """One cycle of Table 1: epochs ``[start_epoch, end_epoch)`` with one architecture."""

    index: int  # 1-based
    start_epoch: int
    end_epoch: int
    blocks_per_stage: tuple
    step_size: float


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; the defaults are the paper's (Section 5.2).

    ``model`` names the final architecture. The first cycle's blocks come from
    ``start_blocks`` or from ``interpolations`` (each halves the blocks); with
    neither, the run trains ``model`` as a baseline. ``scale`` shrinks ``epochs`` and
    ``interpolate_at`` (rounded, at least 1) for small trial runs; it is recorded with the
    other flags, so a scaled run's results always say so.
    """

    model_dir: str = _field("", "Folder for checkpoints, TensorBoard logs and results.json (required).")
    dataset: str = _field("cifar10", "Dataset to train and test on.", tuple(data.DATASETS))
    data_dir: str = _field("", "Folder with an offline copy in the standard binary layout (e.g. "
                               "cifar-10-batches-bin/), or a tensorflow_datasets data dir. Empty: "
                               "tensorflow_datasets' default.")
    download: bool = _field(True, "Let tensorflow_datasets download a missing dataset.")
    model: str = _field("resnet50", "Final architecture: a preset (python -m experiments.models lists them) "
                                    "or {family}{depth}, e.g. resnet50 (8-8-8), lm_resnet56, hamiltonian74; or a "
                                    "family with --start_blocks, doubled at each --interpolate_at.")
    start_blocks: tuple = _field((), "Blocks per stage of the first cycle, e.g. 2,2,2 (multi-level run).")
    interpolations: int | None = _field(None, "Number of interpolations; an alternative to --start_blocks.")
    step_size: float = _field(1.0, "Explicit step size h of the first cycle (Eq. 2).")
    stochastic_depth: float = _field(1.0, "Stochastic depth's p_L, the last block's survival probability in "
                                          "the linear rule (Huang et al. 2016), for every family; 1: off.")
    memory_efficient: bool = _field(False, "Reversible families: recompute activations from the inverse in the "
                                           "backward pass instead of storing them (same gradients, less memory).")
    epochs: int = _field(160, "Total training epochs.")
    interpolate_at: tuple = _field((60, 110), "Epochs where a new cycle starts: the learning rate restarts, "
                                              "a multi-level run interpolates.")
    batch_size: int = _field(0, "Global batch size; 0 for the paper's (CIFAR 100, STL-10 32).")
    lr_max: float = _field(0.5, "Learning rate at the start of every cycle (Eq. 9).")
    lr_min: float = _field(0.001, "Learning rate at the end of every cycle (Eq. 9).")
    weight_decay: float = _field(2e-4, "Coupled L2 weight decay on conv and dense kernels.")
    momentum: float = _field(0.9, "SGD momentum.")
    lr_restart: bool = _field(True, "Restart the cosine learning rate at every cycle (Eq. 9); --nolr_restart "
                                    "anneals once over the whole run (Fig. 10).")
    interpolation_rule: str = _field("copy", "How an interpolation initialises the new blocks: copy (the paper's, "
                                             "Appendix B), linear (the mean of the neighbours in time, as Meganet), "
                                             "zero (zero branches with h kept: the grown net computes what the "
                                             "shallow one did, as Net2Net).", interpolation.RULES)
    restart_warmup: float = _field(0.0, "Epochs over which each restart after the first cycle ramps the learning "
                                        "rate linearly from --lr_min up to --lr_max before its cosine (0: the "
                                        "paper's instant restart).")
    restart_lr_max: float = _field(0.0, "Learning rate every cycle after the first restarts at; 0: --lr_max (the "
                                        "paper's). Acts on the baseline's restarts too.")
    bn_reestimate: int = _field(0, "Training batches passed forward after each interpolation to re-estimate "
                                   "batch-norm statistics before the new cycle (0: keep the copied ones).")
    seed: int = _field(0, "Seed for initialization, data order and augmentation.")
    train_subset: int = _field(0, "Train on the first N images only; 0 for all.")
    scale: float = _field(1.0, "Multiply --epochs and --interpolate_at by this (rounded, at least 1) for a "
                               "small trial run; results.json records it.")
    deterministic: bool = _field(False, "Make TensorFlow ops deterministic (reproducible to the bit, slower on GPU).")
    jit_compile: str = _field("auto", "XLA-compile the training step; auto: Keras' choice (on for GPUs without "
                                      "--strategy, off on CPUs).", ("auto", "true", "false"))
    mixed_precision: str = _field("float32", "Keras dtype policy: mixed_float16 (GPUs; Keras scales the loss) or "
                                             "mixed_bfloat16. The classifier and the loss stay in float32.",
                                  ("float32", "mixed_float16", "mixed_bfloat16"))
    steps_per_execution: int = _field(1, "Training steps per call into the compiled function.")
    data_threads: int = _field(0, "Batches augmented in parallel by tf.data; 0: one per core.")
    intra_op_threads: int = _field(0, "TensorFlow threads within one op; 0: TensorFlow's default (one per core).")
    inter_op_threads: int = _field(0, "TensorFlow ops run at once; 0: TensorFlow's default (one per core).")
    strategy: str = _field("default", "Devices to train on: default (one), mirrored (every local device; "
                                      "under JAX, keras.distribution.DataParallel), multi_worker (the cluster in "
                                      "TF_CONFIG; TensorFlow), tpu.", distribute.STRATEGIES)
    sync_batch_norm: bool = _field(False, "Batch-norm statistics over all replicas instead of each replica's share.")
    lr_scaling: str = _field("none", "linear: multiply --lr_max and --lr_min by global batch / the paper's "
                                     "batch (Goyal et al. 2017).", ("none", "linear"))

    def __post_init__(self):
        object.__setattr__(self, "start_blocks", tuple(int(b) for b in self.start_blocks))
        object.__setattr__(self, "interpolate_at", tuple(int(e) for e in self.interpolate_at))
        _check(self.model_dir, "--model_dir is required: the folder for checkpoints, logs and results.json")
        for field in dataclasses.fields(self):
            choices = field.metadata.get("choices")
            _check(not choices or getattr(self, field.name) in choices,
                   f"--{field.name} must be one of {', '.join(choices or ())}, got {getattr(self, field.name)!r}")
        _check(self.model not in registry.FAMILIES or self.start_blocks,
               f"--model={self.model} is a family: give --start_blocks (the last cycle doubles them at each "
               f"--interpolate_at), or a preset or depth name (python -m experiments.models lists them)")
        try:
            spec = registry.resolve(self.model, self.start_blocks or None)
        except ValueError as error:
            raise ConfigError(f"--model: {error}") from None
        reversible = [f.name for f in registry.FAMILIES.values() if f.reversible]
        _check(not self.memory_efficient or spec.family in reversible,
               f"--memory_efficient recomputes activations from the inverse, which {spec.family} has not: "
               f"use a reversible --model ({', '.join(reversible)}) or drop the flag")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            _check(not isinstance(value, float) or math.isfinite(value),
                   f"--{field.name} must be a finite number, got {value}")
        _check(0 <= self.seed <= MAX_SEED, f"--seed must be a whole number from 0 to {MAX_SEED}, got {self.seed}")
        for name in ("epochs", "step_size", "lr_max", "momentum", "scale"):
            _check(getattr(self, name) > 0, f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("batch_size", "lr_min", "weight_decay", "train_subset", "data_threads", "intra_op_threads",
                     "inter_op_threads", "restart_warmup",
                     "bn_reestimate", "restart_lr_max"):
            _check(getattr(self, name) >= 0, f"--{name} must not be negative, got {getattr(self, name)}")
        _check(0 < self.stochastic_depth <= 1, f"--stochastic_depth is p_L, in (0, 1], got {self.stochastic_depth}")
        _check(self.steps_per_execution >= 1,
               f"--steps_per_execution must be at least 1, got {self.steps_per_execution}")
        _check(self.momentum < 1, f"--momentum must be below 1, got {self.momentum}")
        _check(self.lr_min <= self.lr_max, f"--lr_min={self.lr_min} is above --lr_max={self.lr_max}")
        _check(not self.restart_lr_max or self.lr_min <= self.restart_lr_max,
               f"--lr_min={self.lr_min} is above --restart_lr_max={self.restart_lr_max}")
        bounds = (0,) + self.run_boundaries + (self.run_epochs,)
        scaled = f" (--scale={self.scale:g} makes them {_csv(bounds[1:])})" if self.scale != 1 else ""
        _check(all(a < b for a, b in zip(bounds, bounds[1:])) and all(e >= 1 for e in self.interpolate_at),
               f"--interpolate_at={_csv(self.interpolate_at)} must be increasing epochs between 1 and "
               f"--epochs - 1 = {self.epochs - 1}{scaled}")
        shortest = min((b - a for a, b in zip(bounds[1:], bounds[2:])), default=None)
        _check(shortest is None or self.restart_warmup < shortest,
               f"--restart_warmup={self.restart_warmup:g} must be shorter than the shortest cycle after the first "
               f"({shortest} epochs)")
        k = self.num_interpolations
        _check(k == 0 or k == len(self.interpolate_at),
               f"the run interpolates {k} times but --interpolate_at={_csv(self.interpolate_at)} "
               f"gives {len(self.interpolate_at)} epochs: give one epoch per interpolation")

    @property
    def run_epochs(self) -> int:
        """``epochs`` after ``scale``: how long this run trains."""
        return _scaled(self.epochs, self.scale)

    @property
    def run_boundaries(self) -> tuple:
        """``interpolate_at`` after ``scale``."""
        return tuple(_scaled(e, self.scale) for e in self.interpolate_at)

    @property
    def final_blocks(self) -> tuple:
        """The last cycle's blocks: the named net's, or for a bare family name, ``start_blocks``
        doubled once per interpolation."""
        if self.model in registry.FAMILIES:
            k = len(self.interpolate_at) if self.interpolations is None else self.interpolations
            return tuple(b * 2 ** k for b in self.start_blocks)
        return registry.resolve(self.model).blocks_per_stage

    @property
    def num_interpolations(self) -> int:
        """How often the model doubles: from ``start_blocks`` or ``interpolations``, 0 for a baseline."""
        final = self.final_blocks
        if not self.start_blocks:
            k = self.interpolations or 0
            _check(k >= 0, f"--interpolations must not be negative, got {k}")
            _check(all(b % 2 ** k == 0 for b in final),
                   f"{self.model} ({odenet.format_blocks(final)}) cannot be halved {k} times: "
                   "lower --interpolations or pick a model whose blocks divide by 2**interpolations")
            return k
        ratios = {f / s if s > 0 else 0 for f, s in zip(final, self.start_blocks)}
        ratio = ratios.pop() if len(ratios) == 1 and len(final) == len(self.start_blocks) else 0
        k = round(math.log2(ratio)) if ratio >= 1 else -1
        _check(k >= 0 and 2 ** k == ratio,
               f"--start_blocks={_csv(self.start_blocks)} does not double into {self.model} "
               f"({odenet.format_blocks(final)}): every stage must grow by the same power of 2")
        _check(self.interpolations in (None, k),
               f"--start_blocks={_csv(self.start_blocks)} reaches {self.model} in {k} interpolations, "
               f"not --interpolations={self.interpolations}: give one of the two flags")
        return k

    @property
    def spec(self) -> data.DatasetSpec:
        return data.DATASETS[self.dataset]

    @property
    def effective_batch_size(self) -> int:
        """The global batch: split evenly over the replicas of ``strategy``."""
        return self.batch_size or self.spec.batch_size

    @property
    def learning_rates(self) -> tuple[float, float]:
        """(eta_max, eta_min) after ``lr_scaling``: 'linear' multiplies both by global batch / the
        paper's batch (Goyal et al. 2017), for runs that grow the batch with the devices."""
        factor = self.effective_batch_size / self.spec.batch_size if self.lr_scaling == "linear" else 1.0
        return self.lr_max * factor, self.lr_min * factor

    def cycles(self) -> list[Cycle]:
        """The cycles of the run (Table 1)."""
        k = self.num_interpolations
        starts, ends = (0,) + self.run_boundaries, self.run_boundaries + (self.run_epochs,)
        plan = []
        for i, (start, end) in enumerate(zip(starts, ends)):
            blocks = tuple(b // 2 ** (k - i) for b in self.final_blocks) if k else self.final_blocks
            halved = k and self.interpolation_rule != "zero"  # the zero rule keeps h (interpolation)
            plan.append(Cycle(i + 1, start, end, blocks, self.step_size / 2 ** i if halved else self.step_size))
        return plan


FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
# The flags a run may omit; a stored run that predates one of them resumes with its default.
DEFAULTS = {name: field.default for name, field in FIELDS.items()}


MAX_SEED = 2 ** 31 - 1  # a run also seeds with seed + cycle; TensorFlow, NumPy and Python all take it


def _scaled(epochs, scale):
    return max(1, round(epochs * scale))


def _check(condition, message):
    if not condition:
        raise ConfigError(message)


def _csv(values):
    return ",".join(str(v) for v in values)


def define_flags(flags_module) -> None:
    """Defines one absl flag per field, with its default, help and choices (``experiments.train``)."""
    for name, field in FIELDS.items():
        default, help_text = field.default, field.metadata["help"]
        if name == "model_dir":
            flags_module.DEFINE_string(name, None, help_text)
        elif "choices" in field.metadata:
            flags_module.DEFINE_enum(name, default, list(field.metadata["choices"]), help_text)
        elif isinstance(default, bool):
            flags_module.DEFINE_bool(name, default, help_text)
        elif isinstance(default, tuple):
            flags_module.DEFINE_list(name, [str(v) for v in default], help_text)
        elif isinstance(default, float):
            flags_module.DEFINE_float(name, default, help_text)
        elif isinstance(default, int) or field.type == "int | None":
            flags_module.DEFINE_integer(name, default, help_text)
        else:
            flags_module.DEFINE_string(name, default, help_text)


def from_flags(values: dict) -> TrainConfig:
    """A TrainConfig from flag values; raises ConfigError for any invalid combination."""
    values = {name: values[name] for name in FIELDS if name in values}
    for name, field in FIELDS.items():
        if isinstance(field.default, tuple) and name in values:
            try:
                values[name] = tuple(int(v) for v in values[name])
            except ValueError:
                raise ConfigError(f"--{name} takes whole numbers separated by commas, "
                                  f"got {','.join(values[name])}") from None
    return TrainConfig(**values)


def flag_table() -> str:
    """The README's table of ``experiments.train`` flags, generated from the dataclass."""
    rows = ["| flag | default | meaning |", "| --- | --- | --- |"]
    for name, field in FIELDS.items():
        default = field.default
        shown = f"`{','.join(map(str, default)) if isinstance(default, tuple) else default}`"
        shown = "required" if name == "model_dir" else "none" if default in ("", (), None) else shown
        choices = f" One of: {', '.join(field.metadata['choices'])}." if "choices" in field.metadata else ""
        rows.append(f"| `--{name}` | {shown} | {field.metadata['help']}{choices} |")
    return "\n".join(rows)
