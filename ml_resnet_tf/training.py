"""Multi-level training (Section 4.1, Table 1) and its two baselines (Section 5.2).

A run is a sequence of *cycles* separated by the epochs in ``interpolate_at``.
Every cycle restarts the cosine learning rate (Eq. 9). A multi-level run starts
from ``start_blocks`` with step size ``h`` and interpolates at each boundary
(twice the blocks, half the step size); a baseline (no interpolation) keeps one
architecture and only restarts the learning rate: with the first cycle's blocks
it is the paper's "first-cycle model", with the last cycle's the "last-cycle model".

Where the paper is silent:

* **Optimizer state.** Each cycle starts with zero momentum, in multi-level runs and
  baselines alike. The paper treats each cycle "as a training process" of its own
  (Section 4.1), and new blocks have no history to carry. A multi-level cycle gets a
  fresh SGD optimizer; a baseline zeroes its momentum in place. Only the step counter
  continues, so the schedule sees the global step.
* **Baselines' step size.** A baseline uses ``step_size`` (default 1) throughout:
  ResNet-50 trained with h = 1 is the standard ResNet that Tables 3 and 4 compare
  against. Pass ``step_size=0.25`` to train it with the multi-level run's final h.
* **Weight decay** is coupled L2 on conv and dense kernels (see
  ``models.kernel_regularizer``), not on batch-norm parameters.
* **Time.** The paper's "Time" is training time; it does not say what it leaves out. Ours
  leaves out evaluation, checkpoints and logs, and records apart each ``fit``'s start-up
  (tracing the training step: seconds, once per architecture), which would otherwise make
  a scaled-down run understate the saving that depth gives at full scale (``EpochRecorder``).

Devices and precision: ``strategy`` (``distribute``) wraps the whole run, building,
interpolating, compiling and fitting, in one ``tf.distribute`` scope, and ``batch_size``
is the global batch that the strategy splits over its replicas. ``mixed_precision`` is the
Keras dtype policy for the run only; ``jit_compile``, ``steps_per_execution`` and
``data_threads`` change speed, not results, so a run may resume with other values.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from ml_resnet_tf import analysis, data, distribute, models
from ml_resnet_tf.interpolation import interpolate
from ml_resnet_tf.records import RunRecord
from ml_resnet_tf.schedules import CyclicCosineDecay

PROBE_IMAGES = 500  # test images on which residual norms are logged every epoch


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
    neither, the run trains ``model`` as a baseline. ``batch_size=0`` takes the
    dataset's default (100 for CIFAR, 32 for STL-10), ``train_subset=0`` all images.
    ``scale`` shrinks ``epochs`` and ``interpolate_at`` (rounded, at least 1) for
    small trial runs; it is recorded with the other flags, so a scaled run's
    results always say so.
    Invalid or contradictory values raise ConfigError with one line saying which.
    """

    model_dir: str
    dataset: str = "cifar10"
    data_dir: str = ""
    download: bool = True
    model: str = "resnet50"
    start_blocks: tuple = ()
    interpolations: int | None = None
    step_size: float = 1.0
    epochs: int = 160
    interpolate_at: tuple = (60, 110)
    batch_size: int = 0
    lr_max: float = 0.5
    lr_min: float = 0.001
    weight_decay: float = 2e-4
    momentum: float = 0.9
    lr_restart: bool = True
    seed: int = 0
    train_subset: int = 0
    scale: float = 1.0
    deterministic: bool = False
    jit_compile: str = "auto"
    mixed_precision: str = "float32"
    steps_per_execution: int = 1
    data_threads: int = 0
    strategy: str = "default"
    sync_batch_norm: bool = False
    lr_scaling: str = "none"

    def __post_init__(self):
        object.__setattr__(self, "start_blocks", tuple(int(b) for b in self.start_blocks))
        object.__setattr__(self, "interpolate_at", tuple(int(e) for e in self.interpolate_at))
        _check(self.model_dir, "--model_dir is required: the folder for checkpoints, logs and results.json")
        _check(self.dataset in data.DATASETS, f"--dataset must be one of {', '.join(data.DATASETS)}")
        try:
            models.parse_model_name(self.model)
        except ValueError as error:
            raise ConfigError(f"--model: {error}") from None
        for name in ("epochs", "step_size", "lr_max", "momentum", "scale"):
            _check(getattr(self, name) > 0, f"--{name} must be positive, got {getattr(self, name)}")
        for name in ("batch_size", "lr_min", "weight_decay", "train_subset", "data_threads"):
            _check(getattr(self, name) >= 0, f"--{name} must not be negative, got {getattr(self, name)}")
        _check(self.steps_per_execution >= 1, f"--steps_per_execution must be at least 1, got {self.steps_per_execution}")
        for name, choices in CHOICES.items():
            _check(getattr(self, name) in choices, f"--{name} must be one of {', '.join(choices)}, "
                   f"got {getattr(self, name)!r}")
        _check(self.momentum < 1, f"--momentum must be below 1, got {self.momentum}")
        _check(self.lr_min <= self.lr_max, f"--lr_min={self.lr_min} is above --lr_max={self.lr_max}")
        bounds = (0,) + self.run_boundaries + (self.run_epochs,)
        scaled = f" (--scale={self.scale:g} makes them {_csv(bounds[1:])})" if self.scale != 1 else ""
        _check(all(a < b for a, b in zip(bounds, bounds[1:])),
               f"--interpolate_at={_csv(self.interpolate_at)} must be increasing epochs between 1 and "
               f"--epochs - 1 = {self.epochs - 1}{scaled}")
        k = self.num_interpolations
        _check(k == 0 or k == len(self.interpolate_at),
               f"the run interpolates {k} times but --interpolate_at={_csv(self.interpolate_at)} "
               f"gives {len(self.interpolate_at)} epochs: give one epoch per interpolation")

    @property
    def run_epochs(self):
        """``epochs`` after ``scale``: how long this run trains."""
        return _scaled(self.epochs, self.scale)

    @property
    def run_boundaries(self):
        """``interpolate_at`` after ``scale``."""
        return tuple(_scaled(e, self.scale) for e in self.interpolate_at)

    @property
    def final_blocks(self):
        return models.parse_model_name(self.model)[0]

    @property
    def num_interpolations(self):
        """How often the model doubles: from ``start_blocks`` or ``interpolations``, 0 for a baseline."""
        final = self.final_blocks
        if not self.start_blocks:
            k = self.interpolations or 0
            _check(k >= 0, f"--interpolations must not be negative, got {k}")
            _check(all(b % 2 ** k == 0 for b in final),
                   f"{self.model} ({models.format_blocks(final)}) cannot be halved {k} times: "
                   "lower --interpolations or pick a model whose blocks divide by 2**interpolations")
            return k
        ratios = {f / s if s > 0 else 0 for f, s in zip(final, self.start_blocks)}
        ratio = ratios.pop() if len(ratios) == 1 and len(final) == len(self.start_blocks) else 0
        k = round(math.log2(ratio)) if ratio >= 1 else -1
        _check(k >= 0 and 2 ** k == ratio,
               f"--start_blocks={_csv(self.start_blocks)} does not double into {self.model} "
               f"({models.format_blocks(final)}): every stage must grow by the same power of 2")
        _check(self.interpolations in (None, k),
               f"--start_blocks={_csv(self.start_blocks)} reaches {self.model} in {k} interpolations, "
               f"not --interpolations={self.interpolations}: give one of the two flags")
        return k

    @property
    def spec(self):
        return data.DATASETS[self.dataset]

    @property
    def effective_batch_size(self):
        """The global batch: split evenly over the replicas of ``strategy``."""
        return self.batch_size or self.spec.batch_size

    @property
    def learning_rates(self):
        """(eta_max, eta_min) after ``lr_scaling``: 'linear' multiplies both by global batch / the
        paper's batch (Goyal et al. 2017), for runs that grow the batch with the devices."""
        factor = self.effective_batch_size / self.spec.batch_size if self.lr_scaling == "linear" else 1.0
        return self.lr_max * factor, self.lr_min * factor

    def cycles(self):
        """The cycles of the run (Table 1)."""
        k = self.num_interpolations
        starts, ends = (0,) + self.run_boundaries, self.run_boundaries + (self.run_epochs,)
        plan = []
        for i, (start, end) in enumerate(zip(starts, ends)):
            blocks = tuple(b // 2 ** (k - i) for b in self.final_blocks) if k else self.final_blocks
            plan.append(Cycle(i + 1, start, end, blocks, self.step_size / 2 ** i if k else self.step_size))
        return plan


# The flags a run may omit; a stored run that predates one of them resumes with its default.
DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)
            if field.default is not dataclasses.MISSING}


CHOICES = {"jit_compile": ("auto", "true", "false"),
           "mixed_precision": ("float32", "mixed_float16", "mixed_bfloat16"),
           "strategy": tuple(distribute.STRATEGIES),
           "lr_scaling": ("none", "linear")}


class ConfigError(ValueError):
    """A run's settings are invalid or contradict each other; the message says which."""


def _scaled(epochs, scale):
    return max(1, round(epochs * scale))


def _check(condition, message):
    if not condition:
        raise ConfigError(message)


def _csv(values):
    return ",".join(str(v) for v in values)


def _schedule(config, steps_per_epoch):
    """Eq. 9 on the global step, restarting at every cycle boundary; with ``lr_restart=False``,
    one cosine over the whole run (Fig. 10's "without resetting the learning rate")."""
    boundaries = config.run_boundaries if config.lr_restart else ()
    return CyclicCosineDecay(*config.learning_rates, [e * steps_per_epoch for e in boundaries],
                             config.run_epochs * steps_per_epoch)


def _trainable_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def _duration(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _train_time(summary):
    """'train time 1m36s (+0m15s start-up)' for a cycle's or a run's summary (older runs lack start-up)."""
    return (f"train time {_duration(summary['train_seconds'])} "
            f"(+{_duration(summary.get('startup_seconds', 0.0))} start-up)")


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch without its evaluation, logs the block dynamics, checkpoints.

    Per epoch it writes to TensorBoard (run ``dynamics``) the step size, the number
    of blocks and every block's residual norm ``||G(Y_j)||`` on a fixed set of
    test images, then saves the checkpoint and the epoch's line of results.json.

    The first epoch of every ``fit`` also pays a start-up: opening the input iterator and
    tracing and optimizing the training step, which a multi-level run does once per
    architecture and a baseline once. It does not grow with the epochs, so a scaled-down
    run would charge it to the depth it measures. It is recorded apart, as
    ``startup_seconds``: the first step's time beyond the mean of the epoch's other steps.
    An epoch of one step has nothing to compare with and keeps it in ``train_seconds``.
    """

    def __init__(self, record, cycle, schedule, probe_images, writer):
        super().__init__()
        self.record, self.cycle, self.schedule = record, cycle, schedule
        self.probe_images, self.writer = probe_images, writer

    def on_train_begin(self, logs=None):
        self.opens_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.test_seconds, self.first_step_done = time.perf_counter(), 0.0, None

    def on_train_batch_begin(self, batch, logs=None):
        if batch and self.first_step_done is None:
            self.first_step_done = time.perf_counter()

    def on_test_begin(self, logs=None):
        self.test_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.test_seconds += time.perf_counter() - self.test_started

    def _startup(self, seconds):
        """The start-up in an epoch that took ``seconds`` to train; see the class docstring."""
        if not self.opens_fit or self.first_step_done is None:
            return 0.0
        first = self.first_step_done - self.started
        first_steps = self.model.steps_per_execution  # one call of the training function
        steady = (seconds - first) / (self.params["steps"] - first_steps) * first_steps
        return max(0.0, first - steady)

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started - self.test_seconds
        startup, self.opens_fit = self._startup(seconds), False
        norms = analysis.residual_norms(self.model, self.probe_images)
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("step_size", self.cycle.step_size)
            tf.summary.scalar("blocks", sum(self.cycle.blocks_per_stage))
            for block in norms:
                tf.summary.scalar(f"residual_norm/{block['block']}", block["residual_norm"])
        self.writer.flush()
        self.record.add_epoch({
            "epoch": epoch + 1,
            "cycle": self.cycle.index,
            "train_loss": float(logs["loss"]),
            "train_accuracy": float(logs["accuracy"]),
            "test_loss": float(logs["val_loss"]),
            "test_accuracy": float(logs["val_accuracy"]),
            "test_error": 1.0 - float(logs["val_accuracy"]),
            # The rate of the epoch's last step (Keras' TensorBoard logs the next step's).
            "learning_rate": float(self.schedule(self.model.optimizer.iterations - 1)),
            "train_seconds": seconds - startup,
            "startup_seconds": startup,
            "residual_norms": {block["block"]: block["residual_norm"] for block in norms},
        }, self.model)


def _interpolate(model, cycle, test_data, test_labels, seed):
    """Interpolates into ``cycle``'s architecture and measures what the interpolation changed."""
    started = time.perf_counter()
    keras.utils.set_random_seed(seed + cycle.index)  # identity-initialized blocks draw weights
    new_model = interpolate(model)
    seconds = time.perf_counter() - started
    before = model.predict(test_data, verbose=0)
    after = new_model.predict(test_data, verbose=0)
    return new_model, {
        "cycle": cycle.index,
        "epoch": cycle.start_epoch,
        "from_blocks": list(models.blocks_per_stage(model)),
        "to_blocks": list(cycle.blocks_per_stage),
        "from_step_size": models.step_size(model),
        "to_step_size": cycle.step_size,
        "seconds": seconds,
        "test_accuracy_before": float(np.mean(before.argmax(-1) == test_labels)),
        "test_accuracy_after": float(np.mean(after.argmax(-1) == test_labels)),
        **analysis.logit_agreement(before, after),
    }


def _start_cycle(model, cycle, config, images, test_data, schedule, steps, results, log, writer):
    """Opens ``cycle`` with zero momentum, and records it.

    The first cycle builds its model; a multi-level run interpolates; both then compile a
    fresh optimizer whose step counter starts at the cycle's global step. A baseline keeps
    its model and compiled optimizer and only zeroes the momentum in place, since
    recompiling would retrace the training step (seconds to minutes per cycle).
    An interpolation is also written to TensorBoard (``interpolation/*`` in the ``dynamics``
    run) at the epoch where it happens, so the points stand out beside the accuracy curves.
    """
    if model is not None and models.blocks_per_stage(model) == cycle.blocks_per_stage:
        for momentum in model.optimizer.momentums:
            momentum.assign(keras.ops.zeros(momentum.shape, momentum.dtype))
    else:
        if model is None:
            model = models.build_resnet(cycle.blocks_per_stage, models.parse_model_name(config.model)[1],
                                        cycle.step_size, images.spec.num_classes, images.spec.image_shape,
                                        config.weight_decay, name=config.model,
                                        sync_batch_norm=config.sync_batch_norm)
        else:
            model, change = _interpolate(model, cycle, test_data, images.test_labels, config.seed)
            results["interpolations"] = [i for i in results["interpolations"] if i["cycle"] < cycle.index] + [change]
            with writer.as_default(step=cycle.start_epoch):
                for key in ("test_accuracy_before", "test_accuracy_after", "top1_agreement", "relative_logit_change"):
                    tf.summary.scalar(f"interpolation/{key}", change[key])
            log(f"interpolated {models.format_blocks(change['from_blocks'])} (h={change['from_step_size']:g}) "
                f"-> {models.format_blocks(change['to_blocks'])} (h={change['to_step_size']:g}) at epoch "
                f"{cycle.start_epoch}: test accuracy {change['test_accuracy_before']:.2%} -> "
                f"{change['test_accuracy_after']:.2%}, top-1 agreement {change['top1_agreement']:.2%}, "
                f"relative logit change {change['relative_logit_change']:.3f}")
        models.compile_model(model, schedule, config.momentum, cycle.start_epoch * steps, config.jit_compile,
                             config.steps_per_execution)
    results["cycles"] = results["cycles"][:cycle.index - 1] + [{
        "cycle": cycle.index, "start_epoch": cycle.start_epoch, "end_epoch": cycle.end_epoch,
        "blocks_per_stage": list(cycle.blocks_per_stage), "step_size": cycle.step_size,
        "params": _trainable_params(model),
        # What Keras made of --jit_compile: it falls back to no XLA, e.g. with --deterministic.
        "xla": bool(model.jit_compile)}]
    return model


def train(config, callbacks=(), verbose=1, log=print):
    """Runs (or resumes, or reports) the run ``config`` describes; returns its results dict.

    ``callbacks`` are extra Keras callbacks for every cycle's ``fit``.
    Raises ConfigError, data.DataError or records.RunError with a one-line message.
    """
    record = RunRecord.open(config.model_dir, dataclasses.asdict(config), DEFAULTS)
    if record.finished:
        final = record.results["final"]
        log(f"{config.model_dir} holds a finished run: test error {final['test_error']:.2%}, "
            f"{_train_time(final)}; nothing to do")
        return record.results
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        strategy = distribute.make_strategy(config.strategy)
    except ValueError as error:
        raise ConfigError(f"--strategy={config.strategy}: {error}") from None
    batch_size = config.effective_batch_size
    if batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"--batch_size={batch_size} does not split over {strategy.num_replicas_in_sync} replicas: "
                          "make the global batch a multiple of the replicas")
    images = data.load(config.dataset, config.data_dir or None, config.download, config.train_subset)
    steps = len(images.train_images) // batch_size
    if not steps:
        raise ConfigError(f"--batch_size={batch_size} is larger than the {len(images.train_images)} training images")
    log(f"{config.strategy} strategy: {strategy.num_replicas_in_sync} replicas, global batch {batch_size}, "
        f"{config.mixed_precision}, jit_compile={config.jit_compile}, steps_per_execution={config.steps_per_execution}")
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.mixed_precision)
    try:
        with strategy.scope():
            return _train(config, record, images, batch_size, steps, callbacks, verbose, log)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(config, record, images, batch_size, steps, callbacks, verbose, log):
    """The cycles of ``train``, inside its strategy's scope and dtype policy."""
    test_data = data.test_dataset(images.test_images, images.test_labels, batch_size)
    probe = data.standardize(images.test_images[:PROBE_IMAGES]).numpy()
    schedule = _schedule(config, steps)
    writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "dynamics"))
    results = record.results
    done = record.epochs_done
    model = record.load_checkpoint() if done else None
    keras.utils.set_random_seed(config.seed)
    plan = config.cycles()
    for cycle in plan:
        if cycle.end_epoch <= done:
            continue
        if done == cycle.start_epoch:
            model = _start_cycle(model, cycle, config, images, test_data, schedule, steps, results, log, writer)
            record.save()
        first = max(done, cycle.start_epoch)
        model.fit(data.train_dataset(images.train_images, images.train_labels, images.spec.pad, batch_size,
                                     config.seed, first, cycle.end_epoch, config.data_threads),
                  epochs=cycle.end_epoch, initial_epoch=first, steps_per_epoch=steps,
                  validation_data=test_data, shuffle=False, verbose=verbose,
                  callbacks=[EpochRecorder(record, cycle, schedule, probe, writer),
                             keras.callbacks.TensorBoard(config.model_dir, write_graph=False, profile_batch=0),
                             *callbacks])
        done = cycle.end_epoch
        summary = _close_cycle(results, cycle)
        record.save()
        log(f"cycle {cycle.index}/{len(plan)}: {models.format_blocks(cycle.blocks_per_stage)} blocks, "
            f"h={cycle.step_size:g}, {summary['params']:,} params, epochs {cycle.start_epoch + 1}-"
            f"{cycle.end_epoch}, {_train_time(summary)}, "
            f"test error {summary['test_error']:.2%}")
    for cycle in plan:  # a cycle whose end was reached in an earlier, interrupted process
        _close_cycle(results, cycle)
    last = results["epochs"][-1]
    final = {"test_error": last["test_error"], "test_accuracy": last["test_accuracy"],
             "train_seconds": sum(c["train_seconds"] for c in results["cycles"]),
             "startup_seconds": sum(c["startup_seconds"] for c in results["cycles"])}
    record.finish(model, final)
    log(f"finished: test error {final['test_error']:.2%}, {_train_time(final)}; "
        f"results in {os.path.join(config.model_dir, 'results.json')}, "
        f"TensorBoard: tensorboard --logdir {config.model_dir}")
    return results


def _close_cycle(results, cycle):
    """Fills in a finished cycle's summary from its epochs: time (its epochs' training plus
    the interpolation that opened it), start-up, and final test error. Safe to repeat after a resume."""
    summary = results["cycles"][cycle.index - 1]
    epochs = [e for e in results["epochs"] if e["cycle"] == cycle.index]
    summary["train_seconds"] = (sum(e["train_seconds"] for e in epochs)
                                + sum(i["seconds"] for i in results["interpolations"] if i["cycle"] == cycle.index))
    summary["startup_seconds"] = sum(e.get("startup_seconds", 0.0) for e in epochs)  # 0 in older runs
    summary["test_error"] = epochs[-1]["test_error"]
    return summary
