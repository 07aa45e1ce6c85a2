"""Scale-out through tf.distribute: MirroredStrategy over two logical CPUs agrees with one device."""

import json

import pytest

from tests import helpers

pytestmark = pytest.mark.slow

# Runs in its own process: logical devices must be configured before TensorFlow starts.
SCRIPT = """
import json, sys
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from ml_resnet_tf.training.config import TrainConfig
from ml_resnet_tf.training.trainer import train
data_dir, root = sys.argv[1:]
common = dict(data_dir=data_dir, model="resnet14", start_blocks=(1, 1, 1), epochs=2, interpolate_at=(1,),
              batch_size=50, seed=1, deterministic=True, sync_batch_norm=True)
runs = {name: train(TrainConfig(model_dir=f"{root}/{name}", strategy=name, **common), verbose=0, log=print)
        for name in ("default", "mirrored")}
weights = {name: keras.models.load_model(f"{root}/{name}/model.keras").get_weights() for name in runs}
print("RESULT", json.dumps({
    "replicas": tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]).num_replicas_in_sync,
    "losses": {name: [e["train_loss"] for e in r["epochs"]] for name, r in runs.items()},
    "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(*weights.values())),
    "max_weight": max(float(np.abs(a).max()) for a in weights["default"]),
    "blocks": [r["cycles"][-1]["blocks_per_stage"] for r in runs.values()]}))
"""


def test_mirrored_strategy_on_two_cpus_agrees_with_one_device(tmp_path, tiny_cifar10):
    result = helpers.run_module("tests.run_script", SCRIPT, tiny_cifar10, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert report["replicas"] == 2
    assert "mirrored strategy: 2 replicas, global batch 50" in result.stdout
    assert report["blocks"] == [[2, 2, 2], [2, 2, 2]]  # interpolated inside the strategy's scope
    assert report["losses"]["mirrored"] == pytest.approx(report["losses"]["default"], rel=1e-3)
    assert report["max_weight_difference"] < 1e-3 * report["max_weight"]
