"""The models under the JAX backend: same function as under TensorFlow, interpolation, a train step, bench."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

from ml_resnet_tf import build_resnet, interpolate
from tests import helpers

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")]

# Runs under KERAS_BACKEND=jax in its own process; none of the modules it uses imports TensorFlow.
SCRIPT = """
import json, sys
import keras, numpy as np
from ml_resnet_tf import interpolate
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.training.optimizer import compile_model
assert keras.backend.backend() == "jax"
path, images = sys.argv[1], np.load(sys.argv[2])
model = keras.models.load_model(path)
new = compile_model(interpolate(model), 0.1)
before = new.predict(images, verbose=0)
history = new.fit(images, np.arange(len(images)) % 10, batch_size=4, epochs=1, verbose=0)
print("RESULT", json.dumps({"logits": model.predict(images, verbose=0).tolist(), "interpolated": before.tolist(),
                            "blocks": odenet.blocks_per_stage(new), "loss": history.history["loss"][-1],
                            "ours_import_tensorflow": sorted(
                                name for name, module in list(sys.modules.items()) if name.startswith("ml_resnet_tf")
                                and any(getattr(v, "__name__", "") == "tensorflow" for v in vars(module).values()))}))
"""


def jax_run(*args):
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    return helpers.run_module(*args, env=env)


def test_a_tensorflow_trained_model_computes_the_same_function_under_jax(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_resnet((1, 2, 1), num_classes=10)
    model.save(tmp_path / "model.keras")
    images = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    result = jax_run("tests.run_script", SCRIPT, tmp_path / "model.keras", tmp_path / "images.npy")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    np.testing.assert_allclose(report["logits"], model.predict(images, verbose=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(report["interpolated"], interpolate(model).predict(images, verbose=0),
                               rtol=1e-4, atol=1e-4)
    assert report["blocks"] == [2, 4, 2] and np.isfinite(report["loss"])
    assert report["ours_import_tensorflow"] == []  # Keras itself may import it when it is installed


def test_bench_runs_model_only_under_jax(tmp_path):
    result = jax_run("experiments.bench", "--backend=jax", "--families=resnet", "--architectures=1-1-1,2-2-2",
                     "--batch_size=8", "--steps=2", "--repeats=2", f"--output={tmp_path / 'bench.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["backend"] == "jax" and report["pipeline"] is None
    assert [r["blocks"] for r in report["architectures"]] == ["1-1-1", "2-2-2"]
    assert report["architectures"][1]["interpolation_seconds"] > 0
    assert all(len(r["memory"]["values"]) == 2 for r in report["architectures"])
