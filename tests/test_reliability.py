"""Runs that go wrong: divergence is a failure, not a finish; one process per run folder."""

import contextlib
import dataclasses
import errno
import io
import json
import os
import shutil

import keras
import numpy as np
import pytest

from ml_resnet_tf import build_resnet
from ml_resnet_tf.cli import common
from ml_resnet_tf.runs import folder as run_folder
from ml_resnet_tf.runs import records
from ml_resnet_tf.runs.records import RunError
from ml_resnet_tf.training import data
from ml_resnet_tf.training.data import DataError
from ml_resnet_tf.training.trainer import train
from tests import helpers
from tests.test_training import Interrupt, tiny_config, without_times


class Poison(keras.callbacks.Callback):
    """Turns a kernel into NaN after batch ``batch`` of epoch ``epoch`` (0-based), as a blow-up would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            variable = self.model.trainable_variables[0]
            variable.assign(np.full(variable.shape, np.nan, "float32"))


def test_a_diverged_run_is_failed_and_keeps_its_last_finite_checkpoint(tmp_path, tiny_cifar10):
    config = tiny_config(tmp_path / "run", tiny_cifar10)
    with pytest.raises(RunError, match="diverged in epoch 2 .*last finite checkpoint is checkpoints/epoch_0001"):
        train(config, callbacks=[Poison(epoch=1, batch=1)], verbose=0, log=lambda line: None)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["status"] == "failed" and "diverged" in results["failure"]
    assert [e["epoch"] for e in results["epochs"]] == [1] and results["checkpoint"] == "checkpoints/epoch_0001.keras"
    model = keras.models.load_model(tmp_path / "run" / results["checkpoint"])
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.weights)
    assert not (tmp_path / "run" / "model.keras").exists()
    with pytest.raises(RunError, match="holds a run that failed"):
        train(config, verbose=0, log=lambda line: None)


def test_a_second_process_cannot_train_into_a_locked_folder(tmp_path, tiny_cifar10):
    folder = tmp_path / "run"
    with run_folder.lock(str(folder)):
        result = helpers.run_module("experiments.train", f"--model_dir={folder}", f"--data_dir={tiny_cifar10}",
                                    "--model=resnet8", "--epochs=1", "--interpolate_at=", "--batch_size=50")
        with pytest.raises(RunError, match="another process is training into"):
            train(tiny_config(folder, tiny_cifar10), verbose=0, log=lambda line: None)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert helpers.error_lines(result.stderr) == [f"error: another process is training into {folder}: wait for it "
                                                  "to end, or choose another --model_dir"]
    assert sorted(p.name for p in folder.iterdir()) == [records.LOCK]  # nothing written while it waited
    train(tiny_config(folder, tiny_cifar10, model="resnet8", start_blocks=(), epochs=1, interpolate_at=()),
          verbose=0, log=lambda line: None)
    assert records.is_finished(str(folder))  # the lock left behind does not stand in the way


def test_data_that_cannot_be_right_is_refused(tmp_path):
    root = tmp_path / "data"
    helpers.write_cifar10(root, num_train=20, num_test=10)
    with pytest.raises(DataError, match="--train_subset=21 is more than the 20 training images"):
        data.load("cifar10", str(root), train_subset=21)
    path = root / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = 12  # the first test label
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="test labels in .* run from 1 to 12, outside 0-9: these are not CIFAR-10"):
        data.load("cifar10", str(root))
    batch = root / "cifar-10-batches-bin" / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:3073 * 2])  # cut at a record boundary: still whole records
    with pytest.raises(DataError, match="data_batch_3.bin holds 2 images, the other training files 4: it is cut"):
        data.load("cifar10", str(root))


def test_a_corrupt_checkpoint_is_named_as_corrupt(tmp_path):
    path = tmp_path / "model.keras"
    build_resnet((1, 1, 1)).save(path)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(RunError, match=f"{path} is corrupt"):
        records.load_model(str(path))


KILL_SCRIPT = """
import json, os, sys
import keras
from ml_resnet_tf.runs import records
from ml_resnet_tf.training import cycles, trainer
from ml_resnet_tf.training.recorder import EpochRecorder
from ml_resnet_tf.training.config import TrainConfig

config, (owner, name), count, when = json.loads(sys.argv[1]), sys.argv[2].rsplit(".", 1), int(sys.argv[3]), sys.argv[4]
owner = {"RunRecord": records.RunRecord, "cycles": cycles, "keras.Model": keras.Model,
         "EpochRecorder": EpochRecorder}[owner]
original, calls = getattr(owner, name), []

def killing(*args, **kwargs):  # SIGKILL's effect: the process ends here, no cleanup, no finally
    calls.append(1)
    if len(calls) == count and when == "before":
        os._exit(137)
    result = original(*args, **kwargs)
    if len(calls) == count and when == "after":
        os._exit(137)
    return result

setattr(owner, name, killing)
trainer.train(TrainConfig(**config), verbose=0, log=lambda line: None)
"""

# (what is patched, on which call, before or after it runs): every phase of a 1-1-1 -> 2-2-2 run of four epochs.
KILL_POINTS = [
    ("RunRecord.save", 1, "before"),  # start-up: only the lock exists
    ("RunRecord.save", 1, "after"),  # start-up: results.json written, no model yet
    ("EpochRecorder.on_train_batch_begin", 6, "before"),  # mid-epoch 2
    ("keras.Model.save", 2, "after"),  # epoch 2's checkpoint in its temporary file, not yet renamed
    ("RunRecord.save", 4, "before"),  # epoch 2's checkpoint renamed, results.json not yet pointing at it
    ("cycles.interpolate_into", 1, "before"),  # at the interpolation
    ("cycles.interpolate_into", 1, "after"),  # interpolated, the new cycle not yet recorded
    ("EpochRecorder.on_train_batch_begin", 14, "before"),  # mid-epoch 4, the last
    ("RunRecord.finish", 1, "before"),  # after the final evaluation
    ("keras.Model.save", 5, "after"),  # model.keras in its temporary file
    ("RunRecord.save", 10, "before"),  # model.keras in place, results.json not yet "finished"
]


@pytest.mark.slow
def test_kills_at_every_phase_resume_to_the_uninterrupted_result(tmp_path, tiny_cifar10):
    """A hard kill (no cleanup) at each point, then the same command again: the result is bit-exact the
    uninterrupted run's, and the folder holds nothing a kill left behind."""
    whole = train(tiny_config(tmp_path / "whole", tiny_cifar10), verbose=0, log=lambda line: None)
    final = keras.models.load_model(tmp_path / "whole" / "model.keras").get_weights()
    for index, (target, count, when) in enumerate(KILL_POINTS):
        config = tiny_config(tmp_path / f"kill{index}", tiny_cifar10)
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in config.__dict__.items()}
        killed = helpers.run_module("tests.run_script", KILL_SCRIPT, json.dumps(fields), target, count, when)
        assert killed.returncode == 137, (target, count, when, killed.stderr[-2000:])
        resumed = train(config, verbose=0, log=lambda line: None)
        assert without_times(resumed) == without_times(whole), (target, count, when)
        weights = keras.models.load_model(tmp_path / f"kill{index}" / "model.keras").get_weights()
        for a, b in zip(final, weights):
            np.testing.assert_array_equal(a, b, err_msg=str((target, count, when)))
        assert not list((tmp_path / f"kill{index}").rglob(f"{records.PARTIAL}*")), (target, count, when)
        assert sorted(os.listdir(tmp_path / f"kill{index}" / "checkpoints")) == [
            "epoch_0003.keras", "epoch_0004.keras"]  # the two newest


def test_a_full_disk_is_one_line_and_the_run_resumes(tmp_path, tiny_cifar10, monkeypatch):
    """ENOSPC while checkpointing (simulated): one line, exit 1, and the same command resumes."""
    config = tiny_config(tmp_path / "run", tiny_cifar10, model="resnet8", start_blocks=(), epochs=2, interpolate_at=())
    original, calls = records.save_model, []

    def filling(*args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", "checkpoints/.partial-epoch_0002.keras")
        return original(*args)

    monkeypatch.setattr(records, "save_model", filling)
    with pytest.raises(SystemExit) as stop, contextlib.redirect_stderr(io.StringIO()) as stderr:
        with common.one_line_errors():
            train(config, verbose=0, log=lambda line: None)
    assert stop.value.code == 1
    assert stderr.getvalue() == ("error: No space left on device writing checkpoints/.partial-epoch_0002.keras: free "
                                 "space or fix permissions, then rerun the same command (a run resumes from its last "
                                 "checkpoint)\n")
    monkeypatch.setattr(records, "save_model", original)
    assert train(config, verbose=0, log=lambda line: None)["status"] == "finished"


def test_a_model_dir_inside_a_file_is_one_line(tmp_path, tiny_cifar10):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match=r"cannot write into .*file/run \(Not a directory\)"):
        train(tiny_config(tmp_path / "file" / "run", tiny_cifar10), verbose=0, log=lambda line: None)


def test_resuming_from_moved_data_is_recorded_and_from_other_data_refused(tmp_path, tiny_cifar10):
    config = tiny_config(tmp_path / "run", tiny_cifar10, model="resnet8", start_blocks=(), epochs=2, interpolate_at=())
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[Interrupt(epoch=1, batch=0)], verbose=0, log=lambda line: None)
    moved, other = tmp_path / "moved", tmp_path / "other"
    shutil.copytree(tiny_cifar10, moved)
    shutil.copytree(tiny_cifar10, other)
    path = other / "cifar-10-batches-bin" / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[1] ^= 1  # one pixel of the first test image
    path.write_bytes(bytes(raw))
    before = (tmp_path / "run" / "results.json").read_bytes()
    with pytest.raises(RunError, match=r"the data in .*other/cifar-10-batches-bin \(200 training and 100 test images\) "
                                       r"differ from those .*run began on in .*/cifar-10-batches-bin \(200 and 100\): "
                                       "pass that --data_dir to resume it"):
        train(dataclasses.replace(config, data_dir=str(other)), verbose=0, log=lambda line: None)
    assert (tmp_path / "run" / "results.json").read_bytes() == before
    lines = []
    results = train(dataclasses.replace(config, data_dir=str(moved)), verbose=0, log=lines.append)
    assert results["status"] == "finished" and len(results["epochs"]) == 2
    assert (f"note: the same data, now read from {moved}/cifar-10-batches-bin (was {tiny_cifar10}/"
            "cifar-10-batches-bin); recorded in results.json") in lines
    assert results["data"]["sources"] == [f"{tiny_cifar10}/cifar-10-batches-bin", f"{moved}/cifar-10-batches-bin"]
    assert results["data"]["train_images"] == 200 and len(results["data"]["sha256"]) == 64
