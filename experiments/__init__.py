"""Command-line binaries (absl) and their flagfiles.

Every ``python -m experiments.X`` imports this package first, before any flag is parsed, so it does
the two things that must happen before Keras or TensorFlow is imported:

* it checks the environment variables that decide how the process starts (``KERAS_BACKEND``, the
  thread counts, ``TF_CONFIG``'s syntax, ``CUDA_VISIBLE_DEVICES``) and refuses a bad one with one
  line, as a bad flag is refused;
* it starts TensorFlow quietly. Its C++ runtime writes a dozen lines while it loads (oneDNN, CUDA
  drivers, absl's InitializeLog warning, a cuInit error on machines without a GPU) straight to file
  descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so they are caught there and dropped,
  unless the import fails, when they are replayed above its traceback. ``ML_RESNET_TF_TF_LOGS=1``
  keeps everything (docs/reliability.md, "A quiet start").
"""

import importlib.util
import json
import os
import re
import sys
import tempfile

LOUD = "ML_RESNET_TF_TF_LOGS"
BACKENDS = {"tensorflow": "the default", "jax": "pip install -e '.[jax]'", "torch": "pip install -e '.[torch]'"}
THREADS = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
_DEVICE = r"(\d+|GPU-[0-9a-fA-F-]+|MIG-[0-9a-zA-Z/-]+)"  # an index, or a GPU's or MIG slice's UUID
DEVICE_LIST = re.compile(rf"^(-1|{_DEVICE}(,{_DEVICE})*)?$")


def environment_error(env) -> str | None:
    """What is wrong with the environment ``env`` for a binary, in one line; None if nothing."""
    backend = env.get("KERAS_BACKEND")
    if backend is not None and backend not in BACKENDS:
        return f"KERAS_BACKEND={backend!r} is not one we train under: set it to {', '.join(BACKENDS)}, or unset it"
    if backend and importlib.util.find_spec(backend) is None:
        return f"KERAS_BACKEND={backend} but {backend} is not installed: {BACKENDS[backend]}, or unset KERAS_BACKEND"
    for name in THREADS:
        value = env.get(name)
        if value is not None and not (value.strip().isdigit() and int(value) >= 1):
            return f"{name}={value!r} must be a whole number of threads, at least 1: fix or unset it"
    devices = env.get("CUDA_VISIBLE_DEVICES")
    if devices is not None and not DEVICE_LIST.match(devices.replace(" ", "")):
        return (f"CUDA_VISIBLE_DEVICES={devices!r} is not a comma-separated list of GPU indices or UUIDs: "
                "fix it, or unset it to use every GPU")
    return tf_config_error(env.get("TF_CONFIG"))


def tf_config_error(text: str | None) -> str | None:
    """What is wrong with ``TF_CONFIG``'s syntax: a JSON object whose task is one of its cluster's."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        return f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}): fix it, or unset it"
    cluster = value.get("cluster") if isinstance(value, dict) else None
    task = value.get("task") if isinstance(value, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        return 'TF_CONFIG needs "cluster" and "task" objects, e.g. {"cluster": {"worker": [...]}, "task": {...}}'
    members = cluster.get(task.get("type"))
    index = task.get("index")
    if not isinstance(members, list) or not isinstance(index, int) or not 0 <= index < len(members):
        return (f"TF_CONFIG's task {task.get('type')!r} #{index!r} is not in its cluster "
                f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items() if isinstance(v, list))}): fix the task")
    return None


def start_quietly() -> None:
    """Imports TensorFlow, where it is installed (every backend's input pipeline is tf.data), and loads
    its device platforms, with fd 2 caught. Keras is not imported here: ``experiments.bench`` picks
    the backend from a flag, before Keras' first import."""
    if os.environ.get(LOUD) == "1" or importlib.util.find_spec("tensorflow") is None:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later warnings, too
    sys.stderr.flush()
    saved, sink = os.dup(2), tempfile.TemporaryFile()
    os.dup2(sink.fileno(), 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # loads the device platforms: the cuInit line
    except BaseException:
        os.dup2(saved, 2)
        sink.seek(0)
        sys.stderr.write(sink.read().decode(errors="replace"))
        raise
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        sink.close()


_problem = environment_error(os.environ)
if _problem:
    print(f"error: {_problem}", file=sys.stderr)
    sys.exit(1)
start_quietly()
