"""A small multi-level run on the real CIFAR-10 files from ../shared (skipped without them)."""

import json
import os

import pytest

from ml_resnet_tf.training.config import TrainConfig
from ml_resnet_tf.training.trainer import train

pytestmark = pytest.mark.slow


def test_multilevel_run_on_real_cifar10(tmp_path, real_cifar10):
    config = TrainConfig(model_dir=str(tmp_path / "run"), data_dir=str(real_cifar10), model="resnet14",
                         start_blocks=(1, 1, 1), epochs=4, interpolate_at=(2,), train_subset=4000)
    lines = []
    train(config, verbose=0, log=lines.append)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    print("\n".join(lines))

    assert results["status"] == "finished"
    assert results["final"]["test_accuracy"] > 0.35, results["final"]  # chance is 0.10
    (change,) = results["interpolations"]
    # Interpolating 1-1-1 -> 2-2-2 (two lone downsampling blocks get identity partners) keeps the model
    # far above chance, and the next cycle improves on the model it started from.
    assert change["test_accuracy_after"] > 0.2, change
    assert results["final"]["test_accuracy"] > change["test_accuracy_before"]
    for run in ("train", "validation", "dynamics"):
        assert os.listdir(tmp_path / "run" / run)
