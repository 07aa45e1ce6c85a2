"""Runs that go wrong: divergence is a failure, not a finish; one process per run folder."""

import json

import keras
import numpy as np
import pytest

from ml_resnet_tf import records
from ml_resnet_tf.records import RunError
from ml_resnet_tf.training import train
from tests import helpers
from tests.test_training import tiny_config


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
    with records.lock(str(folder)):
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
