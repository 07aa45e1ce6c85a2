"""One cycle of a run (Section 4.1): how it opens (build, or interpolate, or zero the momentum),
its learning rate (Eq. 9), and its summary once it ends. ``trainer`` runs the cycles in turn."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from ml_resnet_tf.analysis import ensemble, probes
from ml_resnet_tf.nets import odenet, registry
from ml_resnet_tf.training import data, recorder
from ml_resnet_tf.training.config import Cycle, TrainConfig
from ml_resnet_tf.training.optimizer import compile_model
from ml_resnet_tf.training.schedules import CyclicCosineDecay
from ml_resnet_tf.transforms.interpolation import interpolate, reestimate_batch_norm


@dataclasses.dataclass
class RunContext:
    """What every cycle of one run shares: its declaration, data, schedule and outputs."""

    config: TrainConfig
    images: data.ImageData
    test_data: object  # the evaluation dataset
    probe: np.ndarray  # standardized test images whose gains are logged
    schedule: CyclicCosineDecay
    steps: int  # training steps per epoch
    results: dict  # results.json's content, updated in place
    log: Callable[[str], None]
    writer: object  # the TensorBoard writer of the ``dynamics`` run


def schedule(config: TrainConfig, steps_per_epoch: int) -> CyclicCosineDecay:
    """Eq. 9 on the global step, restarting at every cycle boundary; with ``lr_restart=False``,
    one cosine over the whole run (Fig. 10's "without resetting the learning rate")."""
    boundaries = config.run_boundaries if config.lr_restart else ()
    lr_max, lr_min = config.learning_rates
    restart = config.restart_lr_max * lr_max / config.lr_max if config.restart_lr_max else None  # lr_scaling's factor
    return CyclicCosineDecay(lr_max, lr_min, [e * steps_per_epoch for e in boundaries],
                             config.run_epochs * steps_per_epoch,
                             warmup_steps=round(config.restart_warmup * steps_per_epoch) if boundaries else 0,
                             restart_lr_max=restart)


def duration(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def train_time(summary):
    """'train time 1m36s (+0m15s start-up)' for a cycle's or a run's summary (older runs lack start-up)."""
    return (f"train time {duration(summary['train_seconds'])} "
            f"(+{duration(summary.get('startup_seconds', 0.0))} start-up)")


def interpolate_into(model, cycle: Cycle, config: TrainConfig, images, test_data):
    """Interpolates into ``cycle``'s architecture by ``config.interpolation_rule``, re-estimates
    batch-norm statistics if asked, and measures what the two changed."""
    started = recorder.clocks()
    keras.utils.set_random_seed(config.seed + cycle.index)  # identity-initialized blocks draw weights
    new_model = interpolate(model, config.interpolation_rule)
    if config.bn_reestimate:
        count = config.bn_reestimate * config.effective_batch_size
        reestimate_batch_norm(new_model, data.standardize(images.train_images[:count]).numpy(),
                              config.effective_batch_size)
    seconds = recorder.clocks() - started
    test_labels = images.test_labels
    before = model.predict(test_data, verbose=0)
    after = new_model.predict(test_data, verbose=0)
    return new_model, {
        "cycle": cycle.index,
        "epoch": cycle.start_epoch,
        "from_blocks": list(odenet.blocks_per_stage(model)),
        "to_blocks": list(cycle.blocks_per_stage),
        "from_step_size": odenet.step_size(model),
        "to_step_size": cycle.step_size,
        "seconds": float(seconds[0]),
        "cpu_seconds": float(seconds[1]),
        "test_accuracy_before": float(np.mean(before.argmax(-1) == test_labels)),
        "test_accuracy_after": float(np.mean(after.argmax(-1) == test_labels)),
        **probes.logit_agreement(before, after),
    }


def start_cycle(model, cycle: Cycle, run: RunContext):
    """Opens ``cycle`` with zero momentum, and records it.

    The first cycle builds its model; a multi-level run interpolates; both then compile a
    fresh optimizer whose step counter starts at the cycle's global step. A baseline keeps
    its model and compiled optimizer and only zeroes the momentum in place, since
    recompiling would retrace the training step (seconds to minutes per cycle).
    An interpolation is also written to TensorBoard (``interpolation/*`` in the ``dynamics``
    run) at the epoch where it happens, so the points stand out beside the accuracy curves.
    Every cycle records its branch gains before its first step (``gains_at_start``): at
    initialisation, and just after an interpolation, so the effective depth's jump is seen apart
    from the training that follows it.
    """
    config, results = run.config, run.results
    if model is not None and odenet.blocks_per_stage(model) == cycle.blocks_per_stage:
        # Under mixed_float16 Keras wraps SGD in a LossScaleOptimizer, whose inner optimizer holds them.
        for momentum in getattr(model.optimizer, "inner_optimizer", model.optimizer).momentums:
            momentum.assign(keras.ops.zeros(momentum.shape, momentum.dtype))
    else:
        if model is None:
            model = registry.build_model(config.model, run.images.spec.num_classes, run.images.spec.image_shape,
                                         cycle.step_size, cycle.blocks_per_stage, config.weight_decay,
                                         config.sync_batch_norm, stochastic_depth=config.stochastic_depth,
                                         memory_efficient=config.memory_efficient)
            results["family"] = model.spec["family"]  # what every model file of the run is checked against
        else:
            model, change = interpolate_into(model, cycle, config, run.images, run.test_data)
            results["interpolations"] = [i for i in results["interpolations"] if i["cycle"] < cycle.index] + [change]
            with run.writer.as_default(step=cycle.start_epoch):
                for key in ("test_accuracy_before", "test_accuracy_after", "top1_agreement", "relative_logit_change"):
                    tf.summary.scalar(f"interpolation/{key}", change[key])
            run.log(f"interpolated {odenet.format_blocks(change['from_blocks'])} (h={change['from_step_size']:g}) "
                f"-> {odenet.format_blocks(change['to_blocks'])} (h={change['to_step_size']:g}) at epoch "
                f"{cycle.start_epoch}: test accuracy {change['test_accuracy_before']:.2%} -> "
                f"{change['test_accuracy_after']:.2%}, top-1 agreement {change['top1_agreement']:.2%}, "
                f"relative logit change {change['relative_logit_change']:.3f}")
        compile_model(model, run.schedule, config.momentum, cycle.start_epoch * run.steps, config.jit_compile,
                      config.steps_per_execution)
    gains = ensemble.block_gains(model, run.probe)
    depth = ensemble.depth_summary(list(gains.values()))
    with run.writer.as_default(step=cycle.start_epoch):
        tf.summary.scalar("ensemble/mean_depth_at_cycle_start", depth["mean_depth"])
    run.log(f"cycle {cycle.index} opens with an effective depth of {depth['mean_depth']:.2f} of {depth['num_blocks']} "
        f"blocks (mean path length, ml_resnet_tf.analysis.ensemble)")
    results["cycles"] = results["cycles"][:cycle.index - 1] + [{
        "cycle": cycle.index, "start_epoch": cycle.start_epoch, "end_epoch": cycle.end_epoch,
        "blocks_per_stage": list(cycle.blocks_per_stage), "step_size": cycle.step_size,
        "params": odenet.trainable_params(model),
        # What Keras made of --jit_compile: it falls back to no XLA, e.g. with --deterministic.
        "xla": bool(model.jit_compile), "gains_at_start": gains}]
    return model


def close_cycle(results: dict, cycle: Cycle) -> dict:
    """Fills in a finished cycle's summary from its epochs: time (its epochs' training plus
    the interpolation that opened it), start-up, and final test error. Safe to repeat after a resume."""
    summary = results["cycles"][cycle.index - 1]
    epochs = [e for e in results["epochs"] if e["cycle"] == cycle.index]
    changes = [i for i in results["interpolations"] if i["cycle"] == cycle.index]
    summary["train_seconds"] = sum(e["train_seconds"] for e in epochs) + sum(i["seconds"] for i in changes)
    summary["startup_seconds"] = sum(e["startup_seconds"] for e in epochs)
    # None where an epoch or interpolation was recorded before schema 7 (wall clock only).
    cpu = [e["train_cpu_seconds"] for e in epochs] + [i["cpu_seconds"] for i in changes]
    summary["train_cpu_seconds"] = None if None in cpu else sum(cpu)
    startup_cpu = [e["startup_cpu_seconds"] for e in epochs]
    summary["startup_cpu_seconds"] = None if None in startup_cpu else sum(startup_cpu)
    summary["test_error"] = epochs[-1]["test_error"]
    return summary
