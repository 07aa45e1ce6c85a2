"""The per-epoch recorder of a run: timing, block dynamics in TensorBoard, checkpoint and results line."""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from ml_resnet_tf.analysis import ensemble, probes
from ml_resnet_tf.nets import odenet


def clocks() -> np.ndarray:
    """``[wall, process CPU]`` seconds now: the two clocks every training time is taken on."""
    return np.array([time.perf_counter(), time.process_time()])


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch without its evaluation, logs the block dynamics, checkpoints.

    Per epoch it writes to TensorBoard (run ``dynamics``) the step size, the number
    of blocks, every block's residual norm ``||G(Y_j)||`` on a fixed set of test images,
    every block's scalars (its branch gain ``gain/...`` and scales ``bn_gamma/...``, ``kernel_norm/...``,
    ``ml_resnet_tf.analysis.ensemble``, and its family's own ``ODEBlock.summaries``, e.g. LM-ResNet's ``k/...``)
    and the effective depth those gains imply (``ensemble/mean_depth`` and kin), then saves the
    checkpoint and the epoch's line of results.json.

    The first epoch of every ``fit`` also pays a start-up: opening the input iterator and
    tracing and optimizing the training step, which a multi-level run does once per
    architecture and a baseline once. It does not grow with the epochs, so a scaled-down
    run would charge it to the depth it measures. It is recorded apart, as
    ``startup_seconds``: the first step's time beyond the mean of the epoch's other steps.
    An epoch of one step has nothing to compare with and keeps it in ``train_seconds``.

    Every time is taken on two clocks: wall (``*_seconds``) and the process's CPU time
    (``*_cpu_seconds``, all its threads). Wall time grows when another process shares the cores; the
    CPU time of the same work does not (within 5%, measured in docs/headline.md), so the savings and
    the equal-time comparisons read the CPU clock (``analysis.savings.CLOCK``).

    An epoch whose training or test loss is not finite is not recorded or checkpointed: the run
    stops there (``diverged`` says where), so the last checkpoint stays the last finite model.
    """

    def __init__(self, record, cycle, schedule, probe_images, writer):
        super().__init__()
        self.record, self.cycle, self.schedule = record, cycle, schedule
        self.probe_images, self.writer = probe_images, writer

    def on_train_begin(self, logs=None):
        self.opens_fit, self.diverged = True, None

    def on_epoch_begin(self, epoch, logs=None):
        self.started, self.test_seconds, self.first_step_done = clocks(), np.zeros(2), None

    def on_train_batch_begin(self, batch, logs=None):
        if batch and self.first_step_done is None:
            self.first_step_done = clocks()

    def on_test_begin(self, logs=None):
        self.test_started = clocks()

    def on_test_end(self, logs=None):
        self.test_seconds += clocks() - self.test_started

    def _startup(self, seconds):
        """The start-up, on both clocks, in an epoch that took ``seconds`` to train; see the class docstring."""
        if not self.opens_fit or self.first_step_done is None:
            return np.zeros(2)
        first = self.first_step_done - self.started
        first_steps = self.model.steps_per_execution  # one call of the training function
        steady = (seconds - first) / (self.params["steps"] - first_steps) * first_steps
        return np.maximum(0.0, first - steady)

    def on_epoch_end(self, epoch, logs=None):
        losses = {key: float(logs.get(key, math.nan)) for key in ("loss", "val_loss")}
        if not all(math.isfinite(value) for value in losses.values()):
            self.diverged = (epoch + 1, losses)
            self.model.stop_training = True
            return
        seconds = clocks() - self.started - self.test_seconds
        startup, self.opens_fit = self._startup(seconds), False
        norms = probes.residual_norms(self.model, self.probe_images)
        gains = {block["block"]: block["gain"] for block in norms}
        block_scalars = {block.name: {"gain": gains[block.name], **ensemble.branch_scales(block), **block.summaries()}
                         for block in odenet.blocks(self.model)}
        depth = ensemble.depth_summary(list(gains.values()))
        with self.writer.as_default(step=epoch):
            tf.summary.scalar("step_size", self.cycle.step_size)
            tf.summary.scalar("blocks", sum(self.cycle.blocks_per_stage))
            for key in ("mean_depth", "relative_depth", "short_fraction"):
                tf.summary.scalar(f"ensemble/{key}", depth[key])
            for block in norms:
                tf.summary.scalar(f"residual_norm/{block['block']}", block["residual_norm"])
            for name, scalars in block_scalars.items():
                for key, value in scalars.items():
                    tf.summary.scalar(f"{key}/{name}", value)
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
            "train_seconds": float(seconds[0] - startup[0]),
            "startup_seconds": float(startup[0]),
            "train_cpu_seconds": float(seconds[1] - startup[1]),
            "startup_cpu_seconds": float(startup[1]),
            "residual_norms": {block["block"]: block["residual_norm"] for block in norms},
            "block_scalars": block_scalars,
            "ensemble": depth,
        }, self.model)
