"""Measurements behind ``make bench``: where a multi-level run's time goes (Section 4.2 made real).

A multi-level run saves time only if each cheap, shallow cycle really runs faster than the
deep one. Three things can eat the saving: an input pipeline slower than the shallow model,
the rebuild and recompile at every interpolation, and fixed per-step overheads. Each
function here measures one of them, with the model written in ``keras.ops`` only, so the
model-side numbers can be taken under any Keras backend. The input pipeline is TensorFlow's.

Every timing is repeated; :func:`summary` reports the median and the spread (min, max).
"""

import time

import keras
import numpy as np

from ml_resnet_tf.nets import costs, odenet, registry
from ml_resnet_tf.training.optimizer import compile_model
from ml_resnet_tf.transforms.interpolation import interpolate


def summary(values) -> dict:
    """Median and spread of repeated measurements."""
    values = sorted(float(v) for v in values)
    return {"median": float(np.median(values)), "min": values[0], "max": values[-1], "values": values}


def parse_blocks(text: str) -> tuple[int, ...]:
    """``'2-2-2'`` -> (2, 2, 2)."""
    return tuple(int(n) for n in text.split("-"))


def synthetic_images(count: int, image_shape=(32, 32, 3), num_classes: int = 10, seed: int = 0) -> tuple:
    """Random uint8 images and labels: throughput does not depend on what the pixels show."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count,) + tuple(image_shape), dtype=np.uint8),
            rng.integers(0, num_classes, count).astype(np.int32))


def build(family: str, blocks, num_classes: int = 10, image_shape=(32, 32, 3), step_size: float = 1.0,
          options: dict | None = None, **net_options) -> keras.Model:
    """A compiled model of ``family`` (any registered family) with ``blocks``; ``options`` are
    ``compile_model``'s ``jit_compile`` and ``steps_per_execution``, ``net_options`` the net's
    (e.g. ``stochastic_depth``)."""
    model = registry.build_model(family, num_classes, image_shape, step_size, blocks, weight_decay=2e-4,
                                 **net_options)
    return compile_model(model, 0.1, **(options or {}))


def _standardized(images):
    """``data.standardize`` in numpy, so that the model-only benchmark needs no TensorFlow."""
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(x[0].size))


WARMUP_CALLS = 2


def _timed(works: dict, repeats: int) -> dict:
    """Seconds of each of ``repeats`` calls of every work in ``works`` (name -> callable), the works
    taking turns call by call, after untimed calls that warm each up.

    Taking turns puts every work in the same conditions on a machine whose speed drifts (other
    work, a shared host), which timing one after the other does not. The first
    warm-up call traces and compiles; the second is cheap insurance against what else warms up on
    first use (kernels, allocators). Interference shows up in the spread, which is reported.
    """
    for work in works.values():
        for _ in range(WARMUP_CALLS):
            work()
    times = {name: [] for name in works}
    for _ in range(repeats):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - started)
    return times


def throughputs(works: dict, images_per_call: int, repeats: int) -> dict:
    """Images/s of every work in ``works`` (name -> callable processing ``images_per_call`` images),
    timed by ``_timed``: name -> :func:`summary`."""
    return {name: summary([images_per_call / t for t in times]) for name, times in _timed(works, repeats).items()}


def fitting(model: keras.Model, batches, batch_size: int, steps: int):
    """A callable that runs ``model.fit`` over ``steps`` steps.

    ``batches`` is ``(images, labels)`` arrays already in memory (the model's own speed), or a
    callable returning a fresh dataset of batches (the real input pipeline) each call.
    """
    def fit():
        if callable(batches):
            model.fit(batches(), steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
        else:
            model.fit(*batches, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)

    return fit


def in_memory_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, steps: int) -> tuple:
    """``steps`` batches, standardized, as arrays any backend's ``fit`` reads without a pipeline."""
    count = batch_size * steps
    index = np.arange(count) % len(images)
    return _standardized(images[index]), labels[index]


def pipeline_throughput(make_dataset, batch_size: int, steps: int, repeats: int) -> dict:
    """Images/s the input pipeline alone delivers: ``steps`` batches pulled from a fresh iterator."""
    def drain():
        for _ in zip(range(steps), make_dataset()):
            pass

    return throughputs({"pipeline": drain}, steps * batch_size, repeats)["pipeline"]


def interpolation_cost(model: keras.Model, batches, batch_size: int, options: dict | None = None) -> float:
    """Seconds from ``interpolate(model)`` to the end of the new model's first training step,
    its compile and tracing included: what a cycle boundary costs a run."""
    x, y = batches[0][:batch_size], batches[1][:batch_size]
    started = time.perf_counter()
    new_model = compile_model(interpolate(model), 0.1, **(options or {}))
    new_model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return time.perf_counter() - started


def interleaved_step_seconds(first: keras.Model, second: keras.Model, batches, steps: int) -> tuple[list, list]:
    """Seconds of ``steps`` training steps of each model, alternating one step of each (``_timed``)."""
    x, y = batches
    times = _timed({"first": lambda: first.train_on_batch(x, y), "second": lambda: second.train_on_batch(x, y)},
                   steps)
    return times["first"], times["second"]


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))


def reset_peak_memory() -> int:
    """Starts a new peak after the warm-up (tracing, first allocations); returns the bytes in use now.

    On a GPU the allocator's own peak is reset; on a CPU, Linux's peak resident set (``VmHWM``,
    reset through ``/proc/self/clear_refs``). Run with ``MALLOC_MMAP_THRESHOLD_`` low (as
    ``experiments.bench_memory`` does), so that freed tensors go back to the system and the
    resident set follows the live tensors rather than the allocator's cache."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")
            return int(tf.config.experimental.get_memory_info("GPU:0")["current"])
    elif backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "bytes_in_use" in stats:
            return int(stats["bytes_in_use"])  # XLA keeps its peak since start; see peak_memory
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_bytes("VmRSS:")


def peak_memory() -> tuple[int, str]:
    """Peak bytes in use since :func:`reset_peak_memory`, and where the figure comes from."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]), "GPU:0 allocator peak"
    elif backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"]), f"{jax.devices()[0].platform} allocator peak since start"
    return _status_bytes("VmHWM:"), "host peak resident set"


def training_memory(family: str, blocks, memory_efficient: bool, batch_size: int, repeats: int) -> dict:
    """Peak memory and step time of ``model.train_on_batch`` for one net, in a fresh process.

    ``peak_bytes`` is the peak during the timed steps, after the warm-up; ``before_bytes`` what was
    in use when they began (weights, optimizer slots, the compiled step), so the difference is
    what a step adds on top: activations kept for the backward pass and gradients. ``built_bytes``
    is what was in use once the model was built, before the first step traced and compiled it."""
    model = build(family, blocks, memory_efficient=memory_efficient)
    images, labels = synthetic_images(batch_size)
    x = _standardized(images)
    built = reset_peak_memory()
    for _ in range(WARMUP_CALLS):
        model.train_on_batch(x, labels)
    before = reset_peak_memory()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.train_on_batch(x, labels)
        times.append(time.perf_counter() - started)
    peak, source = peak_memory()
    return {"family": family, "blocks": "-".join(map(str, blocks)), "memory_efficient": memory_efficient,
            "params": odenet.trainable_params(model), "built_bytes": built, "before_bytes": before, "peak_bytes": peak,
            "step_bytes": peak - before,
            "memory_source": source, "step_seconds": summary(times), "compiled": compiled_step_memory(model, x, labels)}


def compiled_step_memory(model: keras.Model, x, y) -> dict | None:
    """XLA's own account of one compiled training step, under JAX (None elsewhere).

    ``temp_bytes`` is the scratch memory the compiled step needs beyond its arguments and outputs:
    the activations kept for the backward pass and the gradients. It is what a GPU's allocator would
    have to hold during the step, read from the compiler, not from a process whose resident set also
    holds the compiler, its caches and the Python heap. The step is Keras' own ``train_step`` on the
    model's current state, lowered once more for ``x`` and ``y``."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    state = tuple([v.value for v in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
        model.metrics_variables))
    analysis = jax.jit(model.train_step).lower(state, (x, y)).compile().memory_analysis()
    return {"temp_bytes": int(analysis.temp_size_in_bytes), "argument_bytes": int(analysis.argument_size_in_bytes),
            "output_bytes": int(analysis.output_size_in_bytes)}


def expected_skipped(blocks, last_survival: float) -> float:
    """The fraction of blocks stochastic depth skips on average: the mean of ``1 - p_l`` (linear rule)."""
    rates = odenet.survival_rates(sum(blocks), last_survival)
    return float(np.mean([1.0 - p for p in rates]))


def flops(family: str, blocks, num_classes: int = 10, image_shape=(32, 32, 3)) -> int:
    return costs.flops_per_image(registry.build_model(family, num_classes, image_shape, blocks_per_stage=blocks))
