"""Training on several devices and machines, under whichever Keras backend runs the model.

Under TensorFlow, Keras 3 runs ``model.fit`` under a ``tf.distribute`` strategy when the model,
its optimizer and its metrics are created inside ``strategy.scope()``; it then splits every
global batch of the ``tf.data`` pipeline over the replicas and all-reduces the gradients.
Under JAX, ``keras.distribution.DataParallel`` does the same: variables are replicated, every
batch is sharded over the devices, and XLA inserts the all-reduce. Interpolation builds the new
model inside the same scope, so its variables are placed alike.

* ``default``: one device.
* ``mirrored``: every local accelerator (on a machine without one, every logical CPU device:
  one, unless TensorFlow's CPU is split with ``tf.config.set_logical_device_configuration`` or
  XLA's with ``--xla_force_host_platform_device_count``).
* ``multi_worker`` (TensorFlow): ``MultiWorkerMirroredStrategy``; each worker reads the cluster
  from ``TF_CONFIG`` and must create the strategy before anything else runs a TensorFlow op.
  Worker 0 is the chief: only it writes the run folder (``is_chief``).
* ``tpu``: ``TPUStrategy`` on the TPU that ``TPUClusterResolver`` finds; under JAX, ``mirrored``
  spans a TPU slice's local chips.
"""

import contextlib
import json
import os

import keras

MULTI_WORKER_ON_JAX = ("runs under the TensorFlow backend only; under JAX, --strategy=mirrored spans every "
                       "local device (docs/performance.md, 'Many devices, many machines')")


class Single:
    """No distribution: one replica, and a scope that changes nothing (any backend)."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


class JaxDataParallel:
    """``keras.distribution.DataParallel`` over every device JAX sees, behind the two members of a
    ``tf.distribute.Strategy`` that training uses."""

    def __init__(self):
        self.distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
        self.num_replicas_in_sync = len(self.distribution.device_mesh.devices.flatten())

    def scope(self):
        return self.distribution.scope()


def _tensorflow(name: str):
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy([d.name for d in gpus or tf.config.list_logical_devices("CPU")])
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    return _reducing_elementwise(tf.distribute.MultiWorkerMirroredStrategy())


def _reducing_elementwise(strategy):
    """``strategy`` with a ``reduce`` that takes what Keras 3's TensorFlow trainer passes it.

    Two of its calls fail under ``MultiWorkerMirroredStrategy`` (Keras 3.15): the symbolic build
    reduces a whole (images, labels) batch at once, which MirroredStrategy maps over and this
    strategy cannot; and every step's logs are reduced with ``axis=0``, which a per-replica scalar
    has not. Reducing the nest element by element, and a scalar over the replicas alone, is what
    both calls mean.
    """
    import tensorflow as tf

    reduce = strategy.reduce

    def one(op, value, axis):
        scalar = all(t.shape.rank == 0 for t in strategy.experimental_local_results(value))
        return reduce(op, value, None if scalar else axis)

    strategy.reduce = lambda op, value, axis=None: tf.nest.map_structure(lambda v: one(op, v, axis), value)
    return strategy


STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str):
    """The strategy called ``name`` for the running Keras backend; raises ValueError saying why
    one cannot be made. It has ``num_replicas_in_sync`` and ``scope()``."""
    cluster = os.environ.get("TF_CONFIG")
    if name == "multi_worker" and not cluster:
        raise ValueError("reads the cluster from TF_CONFIG, which is not set: set it on every worker "
                         "(docs/performance.md, 'Many devices, many machines'), or pick another --strategy")
    if name != "multi_worker" and cluster:
        raise ValueError("TF_CONFIG is set, and this strategy would ignore the cluster it names: pass "
                         "--strategy=multi_worker, or unset TF_CONFIG")
    backend = keras.backend.backend()
    failures = (ValueError, RuntimeError)
    if backend == "tensorflow":
        import tensorflow as tf

        failures += (tf.errors.OpError,)
    try:
        if name == "default":
            return Single()
        if backend == "tensorflow":
            return _tensorflow(name)
        if backend == "jax" and name in ("mirrored", "tpu"):
            return JaxDataParallel()
        raise ValueError(MULTI_WORKER_ON_JAX if backend == "jax" else
                         f"needs the TensorFlow or JAX backend; the {backend} backend trains on one device")
    except failures as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot start the {name} strategy: {first_line}") from None


def device_kind() -> str:
    """``cpu``, ``gpu`` or ``tpu``: what this process trains on, which decides what its CPU clock means
    (``analysis.savings.clock``); ``unknown`` where the backend cannot list its devices (torch)."""
    try:
        return keras.distribution.list_devices()[0].split(":")[0].lower()
    except (AttributeError, NotImplementedError, RuntimeError, IndexError):
        return "unknown"


def is_chief() -> bool:
    """Whether this process writes the run: always, except a non-chief worker of a ``TF_CONFIG`` cluster.

    TensorFlow's rule: the chief is the task of type ``chief``, or worker 0 where there is none.
    """
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0
