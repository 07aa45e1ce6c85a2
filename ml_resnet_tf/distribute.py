"""Training on several devices with ``tf.distribute``, the path Keras 3's TensorFlow backend supports.

Keras 3 on TensorFlow runs ``model.fit`` under a ``tf.distribute`` strategy when the model,
its optimizer and its metrics are created inside ``strategy.scope()``; it then splits every
global batch of the ``tf.data`` pipeline over the replicas and all-reduces the gradients.
Interpolation builds the new model inside the same scope, so its variables are mirrored too.
(Under JAX, ``keras.distribution.DataParallel`` is the counterpart; ``experiments.bench``
uses no strategy there.)

* ``default``: one device (TensorFlow's default strategy: no wrapping at all).
* ``mirrored``: every local GPU, synchronous data parallelism; on a machine without GPUs,
  every logical CPU device (one unless split with ``tf.config.set_logical_device_configuration``).
* ``multi_worker``: ``MultiWorkerMirroredStrategy``; each worker reads the cluster from
  ``TF_CONFIG`` and must create the strategy before anything else touches TensorFlow.
* ``tpu``: ``TPUStrategy`` on the TPU that ``TPUClusterResolver`` finds.
"""

import tensorflow as tf


def _tpu():
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _mirrored():
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy([d.name for d in gpus or tf.config.list_logical_devices("CPU")])


STRATEGIES = {
    "default": tf.distribute.get_strategy,
    "mirrored": _mirrored,
    "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,
    "tpu": _tpu,
}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name``; raises ValueError saying why one cannot be made."""
    try:
        return STRATEGIES[name]()
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot start the {name} strategy: {first_line}") from None
