"""The trainer: cycle plans, validation, records, and resuming after a kill."""

import json
import os

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ml_resnet_tf.nets import odenet
from ml_resnet_tf.runs.records import RunError
from ml_resnet_tf.training.config import ConfigError, Cycle, TrainConfig
from ml_resnet_tf.training.trainer import train


def test_multilevel_plan_matches_table1():
    config = TrainConfig("unused", model="resnet50", start_blocks=(2, 2, 2))
    assert config.cycles() == [Cycle(1, 0, 60, (2, 2, 2), 1.0), Cycle(2, 60, 110, (4, 4, 4), 0.5),
                               Cycle(3, 110, 160, (8, 8, 8), 0.25)]
    assert TrainConfig("unused", model="resnet50", interpolations=2).cycles() == config.cycles()


def test_baselines_restart_without_interpolating():
    last = TrainConfig("unused", model="resnet50", step_size=0.25).cycles()
    assert [(c.blocks_per_stage, c.step_size) for c in last] == [((8, 8, 8), 0.25)] * 3
    assert [(c.start_epoch, c.end_epoch) for c in last] == [(0, 60), (60, 110), (110, 160)]
    first = TrainConfig("unused", model="resnet14", interpolations=0).cycles()
    assert {c.blocks_per_stage for c in first} == {(2, 2, 2)}


@pytest.mark.parametrize("changes, message", [
    (dict(model_dir=""), "--model_dir is required"),
    (dict(dataset="imagenet"), "--dataset must be one of"),
    (dict(model="resnet15"), "--model: unknown model"),
    (dict(epochs=0), "--epochs must be positive"),
    (dict(lr_min=0.6), "--lr_min=0.6 is above --lr_max=0.5"),
    (dict(restart_warmup=50), "--restart_warmup=50 must be shorter than the shortest cycle after the first (50"),
    (dict(interpolation_rule="cubic"), "--interpolation_rule must be one of copy, linear, zero, got 'cubic'"),
    (dict(bn_reestimate=-1), "--bn_reestimate must not be negative, got -1"),
    (dict(momentum=1.0), "--momentum must be below 1"),
    (dict(batch_size=-1), "--batch_size must not be negative"),
    (dict(interpolate_at=(110, 60)), "must be increasing epochs"),
    (dict(interpolate_at=(60, 160)), "must be increasing epochs"),
    (dict(start_blocks=(2, 2, 2), interpolate_at=(60,)), "interpolates 2 times but --interpolate_at=60"),
    (dict(start_blocks=(3, 3, 3)), "does not double into resnet50"),
    (dict(start_blocks=(2, 4, 8)), "does not double into resnet50"),
    (dict(start_blocks=(2, 2)), "does not double into resnet50"),
    (dict(start_blocks=(2, 2, 2), interpolations=1), "reaches resnet50 in 2 interpolations"),
    (dict(model="resnet32", interpolations=1, interpolate_at=(60,)), "cannot be halved 1 times"),
    (dict(strategy="horovod"), "--strategy must be one of default, mirrored, multi_worker, tpu"),
    (dict(mixed_precision="fp16"), "--mixed_precision must be one of float32"),
    (dict(steps_per_execution=0), "--steps_per_execution must be at least 1"),
])
def test_invalid_configs_raise_one_line(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        TrainConfig(**{"model_dir": "runs/x", **changes})
    assert "\n" not in str(error.value)


def tiny_config(model_dir, data_dir, **changes):
    """1-1-1 -> 2-2-2 on 200 generated images: four epochs of four steps."""
    return TrainConfig(**{**dict(model_dir=str(model_dir), data_dir=str(data_dir), model="resnet14",
                                 start_blocks=(1, 1, 1), epochs=4, interpolate_at=(2,), batch_size=50,
                                 seed=1, deterministic=True), **changes})


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt, as Ctrl-C would, after batch ``batch`` (or the end) of epoch ``epoch``."""

    def __init__(self, epoch, batch=None):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch and self.batch is None:
            raise KeyboardInterrupt


def without_times(results):
    """Results minus wall-clock times, paths, the processes that trained them (a resumed run has
    one session more) and the run's id, which differ between any two runs."""
    text = json.dumps(results, sort_keys=True)
    clean = json.loads(text)
    for entry in clean["epochs"] + clean["cycles"] + [clean["final"]]:
        for key in ("train_seconds", "startup_seconds", "train_cpu_seconds", "startup_cpu_seconds"):
            entry.pop(key, None)
    for entry in clean["interpolations"]:
        entry.pop("seconds")
        entry.pop("cpu_seconds")
    clean.pop("flags")
    clean.pop("sessions")
    clean.pop("run_id")
    return clean


def test_records_what_the_issue_asks_for(tmp_path, tiny_cifar10):
    lines = []
    results = train(tiny_config(tmp_path / "run", tiny_cifar10), verbose=0, log=lines.append)
    assert any(line.startswith("interpolated 1-1-1 (h=1) -> 2-2-2 (h=0.5) at epoch 2") for line in lines)
    assert any(line.startswith("cycle 2/2: 2-2-2 blocks, h=0.5, 172,506 params") for line in lines)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results)) and on_disk["status"] == "finished"
    assert "evaluation" in on_disk["time_note"] and on_disk["final"]["train_seconds"] > 0
    # Start-up (tracing a new architecture's step) is in the first epoch of each cycle's fit only.
    startups = [e["startup_seconds"] for e in on_disk["epochs"]]
    assert startups[0] > 0 and startups[2] > 0 and startups[1] == startups[3] == 0
    assert [c["startup_seconds"] for c in on_disk["cycles"]] == [startups[0], startups[2]]
    assert on_disk["final"]["startup_seconds"] == pytest.approx(sum(startups))
    # The same on the CPU clock, which a busy machine does not stretch (docs/headline.md).
    assert all(e["train_cpu_seconds"] > 0 for e in on_disk["epochs"]) and on_disk["sessions"][0]["device"] == "cpu"
    assert on_disk["final"]["train_cpu_seconds"] == pytest.approx(
        sum(e["train_cpu_seconds"] for e in on_disk["epochs"]) + on_disk["interpolations"][0]["cpu_seconds"])
    assert on_disk["epochs"][0]["startup_cpu_seconds"] > 0 == on_disk["epochs"][1]["startup_cpu_seconds"]
    assert [(c["blocks_per_stage"], c["step_size"], c["params"]) for c in on_disk["cycles"]] == [
        ([1, 1, 1], 1.0, 75_290), ([2, 2, 2], 0.5, 172_506)]
    (change,) = on_disk["interpolations"]
    assert change["epoch"] == 2
    assert change["test_accuracy_before"] == pytest.approx(on_disk["epochs"][1]["test_accuracy"], abs=1e-6)
    assert {"test_accuracy_after", "top1_agreement", "relative_logit_change"} <= set(change)
    # The effective depth (ml_resnet_tf.analysis.ensemble) every epoch, and on both sides of the interpolation.
    assert [e["ensemble"]["num_blocks"] for e in on_disk["epochs"]] == [3, 3, 6, 6]
    assert [len(c["gains_at_start"]) for c in on_disk["cycles"]] == [3, 6]
    assert on_disk["flags"]["start_blocks"] == [1, 1, 1] and on_disk["flags"]["lr_max"] == 0.5
    lrs = [e["learning_rate"] for e in on_disk["epochs"]]
    assert lrs[0] == pytest.approx(lrs[2])
    assert lrs[1] == pytest.approx(0.001 + 0.499 * (1 + np.cos(np.pi * 7 / 8)) / 2, rel=1e-5)
    assert set(on_disk["epochs"][3]["residual_norms"]) == {f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2)}
    tags = {}
    for run in ("train", "validation", "dynamics"):
        events = EventAccumulator(str(tmp_path / "run" / run), size_guidance={"tensors": 0})
        events.Reload()
        tags[run] = {tag: [e.step for e in events.Tensors(tag)] for tag in events.Tags()["tensors"]}
    assert tags["train"]["epoch_accuracy"] == [0, 1, 2, 3] and "epoch_learning_rate" in tags["train"]
    assert tags["validation"]["epoch_accuracy"] == [0, 1, 2, 3]
    assert tags["dynamics"]["blocks"] == tags["dynamics"]["step_size"] == [0, 1, 2, 3]
    assert tags["dynamics"]["ensemble/mean_depth"] == tags["dynamics"]["gain/stage2_block1"] == [0, 1, 2, 3]
    assert tags["dynamics"]["ensemble/mean_depth_at_cycle_start"] == [0, 2]
    assert tags["dynamics"]["residual_norm/stage3_block2"] == [2, 3]  # the block exists from cycle 2 on
    assert tags["dynamics"]["interpolation/test_accuracy_after"] == [2]


def test_a_finished_run_is_reported_not_retrained(tmp_path, tiny_cifar10):
    config = tiny_config(tmp_path / "run", tiny_cifar10, epochs=2, interpolate_at=(1,))
    train(config, verbose=0, log=lambda line: None)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    lines = []
    train(config, verbose=0, log=lines.append)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before
    assert len(lines) == 1 and "holds a finished run" in lines[0]


def test_refuses_a_run_with_other_flags_and_foreign_folders(tmp_path, tiny_cifar10):
    config = tiny_config(tmp_path / "run", tiny_cifar10, epochs=2, interpolate_at=(1,))
    train(config, verbose=0, log=lambda line: None)
    results = (tmp_path / "run" / "results.json").read_bytes()
    with pytest.raises(RunError, match="holds a run with --epochs=2, not 3"):
        train(tiny_config(tmp_path / "run", tiny_cifar10, epochs=3, interpolate_at=(1,)), verbose=0)
    assert (tmp_path / "run" / "results.json").read_bytes() == results
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="holds no results.json"):
        train(tiny_config(tmp_path / "other", tiny_cifar10), verbose=0)
    assert os.listdir(tmp_path / "other") == ["notes.txt"]


class MomentumProbe(keras.callbacks.Callback):
    """Notes, at the start of each epoch, the size of the momentum and which train function runs."""

    def __init__(self):
        super().__init__()
        self.momentum, self.functions = {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.momentum[epoch] = sum(float(np.abs(keras.ops.convert_to_numpy(m)).sum())
                                   for m in self.model.optimizer.momentums)
        self.functions[epoch] = self.model.train_function


def test_a_baseline_restart_zeroes_momentum_without_recompiling(tmp_path, tiny_cifar10):
    probe = MomentumProbe()
    train(tiny_config(tmp_path / "run", tiny_cifar10, start_blocks=(), model="resnet8", epochs=4,
                      interpolate_at=(2,)), callbacks=[probe], verbose=0, log=lambda line: None)
    assert probe.momentum[0] == 0 and probe.momentum[1] > 0  # fresh, then accumulating
    assert probe.momentum[2] == 0 and probe.momentum[3] > 0  # the restart zeroed it
    assert probe.functions[2] is probe.functions[1]          # and kept the traced step


@pytest.mark.slow
def test_multilevel_lm_resnet_with_stochastic_depth_resumes_and_records_k(tmp_path, tiny_cifar10):
    """Any family trains multi-level through the same trainer: LM-ResNet 1-1-1 -> 2-2-2 with p_L = 0.5,
    killed right before its interpolation and resumed, ends where an uninterrupted run does."""
    changes = dict(model="lm_resnet14", stochastic_depth=0.5)
    whole = train(tiny_config(tmp_path / "whole", tiny_cifar10, **changes), verbose=0, log=lambda line: None)
    config = tiny_config(tmp_path / "resumed", tiny_cifar10, **changes)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[Interrupt(epoch=1)], verbose=0, log=lambda line: None)
    resumed = train(config, verbose=0, log=lambda line: None)
    assert without_times(resumed) == without_times(whole)
    assert [c["blocks_per_stage"] for c in resumed["cycles"]] == [[1, 1, 1], [2, 2, 2]]
    # Only non-first blocks have a k: after 1-1-1 -> 2-2-2, block 2 of each stage.
    scalars = resumed["epochs"][-1]["block_scalars"]
    assert {name for name, values in scalars.items() if "k" in values} == {"stage1_block2", "stage2_block2",
                                                                             "stage3_block2"}
    assert all({"gain", "bn_gamma", "kernel_norm"} <= set(values) for values in scalars.values()) and len(scalars) == 6
    model = keras.models.load_model(tmp_path / "resumed" / "model.keras")
    assert model.spec["family"] == "lm_resnet" and model.name == "lm_resnet14"
    assert [b.survival for b in odenet.blocks(model)] == pytest.approx(odenet.survival_rates(6, 0.5))
