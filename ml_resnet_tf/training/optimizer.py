"""The optimizer, loss and metrics every cycle compiles with (Section 5.2: SGD with momentum).

Kept apart from the trainer, which needs TensorFlow for its logs, so that the benchmark and
the JAX backend can compile models without importing TensorFlow.
"""

import keras


def compile_model(model: keras.Model, schedule, momentum: float = 0.9, start_step: int = 0,
                  jit_compile: str | bool = "auto", steps_per_execution: int = 1) -> keras.Model:
    """Compiles ``model`` with a fresh SGD optimizer whose step counter starts at ``start_step``.

    Under a ``mixed_float16`` policy Keras wraps the optimizer in a LossScaleOptimizer itself.
    """
    optimizer = keras.optimizers.SGD(schedule, momentum=momentum)
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile={"true": True, "false": False}.get(jit_compile, jit_compile),
                  steps_per_execution=steps_per_execution)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(start_step)
    return model
