"""Test helpers: a layer-test routine and writers for the datasets' binary layouts."""

import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np

from ml_resnet_tf.runs import schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_SERVERS = {}  # environment changes -> a running tests.fork_server


def _fork_server(changes: dict) -> subprocess.Popen:
    """This worker's fork server for an environment that differs from ours by ``changes`` (None: unset)."""
    key = tuple(sorted(changes.items(), key=lambda item: item[0]))
    server = _SERVERS.get(key)
    if server is None or server.poll() is not None:
        env = {k: v for k, v in {**os.environ, **changes}.items() if v is not None}
        server = subprocess.Popen([sys.executable, "-m", "tests.fork_server"], cwd=ROOT, env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        _SERVERS[key] = server
    return server


def run_module(module, *args, timeout=600, env=None):
    """``python -m MODULE ARGS`` from the repository root, as a user runs the binaries, with ``env`` for its
    environment (default: ours). It runs in a child of ``tests.fork_server``, which imported TensorFlow once:
    the same argv, folder, environment, streams and exit status, less the import's seconds."""
    args = [str(a) for a in args]
    changes = {} if env is None else {**{k: v for k, v in env.items() if os.environ.get(k) != v},
                                      **{k: None for k in set(os.environ) - set(env)}}
    server = _fork_server(changes)
    with tempfile.TemporaryDirectory(prefix="run_module-") as scratch:
        out, err = os.path.join(scratch, "out"), os.path.join(scratch, "err")
        server.stdin.write(json.dumps({"module": module, "args": args, "cwd": ROOT, "timeout": timeout,
                                       "out": out, "err": err}) + "\n")
        server.stdin.flush()
        reply = json.loads(server.stdout.readline())
        stdout, stderr = (open(path).read() if os.path.exists(path) else "" for path in (out, err))
    command = [sys.executable, "-m", module, *args]
    if reply["timed_out"]:
        raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(command, reply["code"], stdout, stderr)


def error_lines(stderr):
    """What the user reads, less TensorFlow's start-up logging and absl's help hint."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("WARNING: All log", "I0000", "E0000", "W0000"))
            and "--helpshort" not in line]


def run_layer_test(layer, input_shape, expected_output_shape, expected_trainable, expected_non_trainable,
                   tmp_path):
    """Builds and calls ``layer``, takes a train step, and round-trips it through config and .keras.

    Returns the layer's output on a fixed random input.
    """
    x = np.random.default_rng(0).normal(size=(4,) + tuple(input_shape)).astype("float32")
    y = layer(x)
    assert tuple(y.shape) == (4,) + tuple(expected_output_shape)
    assert len(layer.trainable_weights) == expected_trainable
    assert len(layer.non_trainable_weights) == expected_non_trainable

    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build((None,) + tuple(input_shape))
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(y), rtol=1e-6)

    model = keras.Sequential([keras.Input(input_shape), layer])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, np.zeros((4,) + tuple(expected_output_shape), "float32"))
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "a train step changed nothing"

    path = os.path.join(tmp_path, "layer.keras")
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), model.predict(x, verbose=0))
    return y


def _images(rng, n, size):
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def write_cifar(folder, files, num_classes, header):
    """Writes CIFAR records (``header`` label bytes, then the CHW image) into ``folder``.

    ``files`` maps file name -> number of images. Returns {file: (images NHWC, labels)}.
    """
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(len(files) + num_classes)
    written = {}
    for name, n in files.items():
        images, labels = _images(rng, n, 32), rng.integers(0, num_classes, n).astype(np.uint8)
        labels[:num_classes] = np.arange(min(n, num_classes))  # every class appears
        chw = images.transpose(0, 3, 1, 2).reshape(n, -1)
        head = np.stack([labels // 5, labels][-header:], axis=1).astype(np.uint8)
        np.concatenate([head, chw], axis=1).tofile(os.path.join(folder, name))
        written[name] = (images, labels)
    return written


def write_cifar10(root, num_train, num_test):
    per_batch = num_train // 5
    files = {f"data_batch_{i}.bin": per_batch for i in range(1, 6)}
    files["test_batch.bin"] = num_test
    return write_cifar(os.path.join(root, "cifar-10-batches-bin"), files, 10, header=1)


def write_cifar100(root, num_train, num_test):
    return write_cifar(os.path.join(root, "cifar-100-binary"), {"train.bin": num_train, "test.bin": num_test},
                       100, header=2)


def write_stl10(root, num_train, num_test):
    """STL-10's layout: X files of column-major 3x96x96 images, y files of labels 1..10."""
    folder = os.path.join(root, "stl10_binary")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(10)
    written = {}
    for split, n in (("train", num_train), ("test", num_test)):
        images, labels = _images(rng, n, 96), rng.integers(0, 10, n).astype(np.uint8)
        images.transpose(0, 3, 2, 1).tofile(os.path.join(folder, f"{split}_X.bin"))
        (labels + 1).tofile(os.path.join(folder, f"{split}_y.bin"))
        written[split] = (images, labels)
    return written


def results_payload(accuracies=(0.5,), status="finished", cycles=(), final=None, flags=None):
    """A schema-valid results.json (``ml_resnet_tf.runs.schema``) with the given per-epoch test accuracies,
    cycles ``(start_epoch, end_epoch, blocks)`` and ``final`` fields: what the readers' tests feed them."""
    epochs = [{"epoch": i + 1, "cycle": 1, "train_loss": 1.0, "train_accuracy": a, "test_loss": 1.0,
               "test_accuracy": a, "test_error": 1 - a, "learning_rate": 0.1, "train_seconds": 1.0,
               "startup_seconds": 0.0, "residual_norms": {}, "block_scalars": {}, "ensemble": None}
              for i, a in enumerate(accuracies)]
    payload = {"schema_version": 3, "status": status, "flags": flags or {}, "time_note": "", "interpolations": [],
               "epochs": epochs, "checkpoint": None, "sessions": [],
               "cycles": [{"cycle": i + 1, "start_epoch": start, "end_epoch": end, "blocks_per_stage": list(blocks),
                           "step_size": 1.0, "params": 1, "xla": False,
                           "gains_at_start": {}}
                          for i, (start, end, blocks) in enumerate(cycles)]}
    if status == "finished":
        payload["final"] = {"test_error": 1 - accuracies[-1], "test_accuracy": accuracies[-1], "train_seconds": 1.0,
                            "startup_seconds": 0.0, **(final or {})}
    return schema.upgrade(payload)  # as every reader gets it: schema 3 has wall-clock times only


def train_argv(config) -> list:
    """``experiments.train``'s flags for a ``TrainConfig``: every field that differs from its default."""
    import dataclasses

    from ml_resnet_tf.training.config import DEFAULTS

    def text(value):
        if isinstance(value, bool):
            return str(value).lower()
        return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)

    return [f"--{key}={text(value)}" for key, value in dataclasses.asdict(config).items()
            if json.loads(json.dumps(value)) != json.loads(json.dumps(DEFAULTS.get(key)))]
