"""TensorFlow's CPU thread pools: set before the first op, and recorded with every measurement.

TensorFlow runs a step's ops on an inter-op pool, and splits each op over an intra-op pool; both
default to one thread per core. Which split is fastest depends on the machine
(docs/performance.md, "Using the cores"), so both are flags, and what a run or a benchmark
actually ran with is written beside its numbers.
"""

import os

import tensorflow as tf


def configure(intra_op: int = 0, inter_op: int = 0) -> dict:
    """Sets the pools' sizes (0 keeps TensorFlow's default); returns the settings in effect.

    Must run before TensorFlow executes its first op: afterwards the pools exist and cannot be
    resized, and this raises RuntimeError saying so.
    """
    if intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads() or f"default ({os.cpu_count()})",
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads() or f"default ({os.cpu_count()})",
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")}
