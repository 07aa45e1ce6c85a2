"""One ``make bench`` measurement per architecture: throughput in memory and through the pipeline,
the PyTorch twin taking turns, stochastic depth's saving, and the cost of interpolating into it."""

from __future__ import annotations

import dataclasses

from ml_resnet_tf.bench import timing


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What ``experiments.bench``'s flags say about how to measure (the flags document each field)."""

    backend: str = "tensorflow"
    batch_size: int = 100
    steps: int = 20
    repeats: int = 3
    stochastic_depth: float = 1.0
    reference: str = "none"
    torch_modes: tuple = ("eager", "compiled")
    memory_input: str = "dataset"
    options: dict = dataclasses.field(default_factory=dict)  # compile_model's jit_compile, steps_per_execution


def measure(family, blocks, images, labels, make_dataset, settings: BenchSettings):
    """One architecture's row: FLOPs, throughput in memory and through the pipeline (and of the
    PyTorch twin), the model."""
    model = timing.build(family, blocks, options=settings.options)
    batches = timing.in_memory_batches(images, labels, settings.batch_size, settings.steps)
    works = {"memory": timing.fitting(model, memory_input(batches, settings), settings.batch_size, settings.steps)}
    if make_dataset:
        works["pipeline"] = timing.fitting(model, make_dataset, settings.batch_size, settings.steps)
    unavailable = torch_works(family, blocks, model, batches, works, settings) if settings.reference == "torch" else {}
    speeds = timing.throughputs(works, settings.batch_size * settings.steps, settings.repeats)
    row = {"family": family, "blocks": "-".join(map(str, blocks)), "flops_per_image": timing.flops(family, blocks),
           **{key: speeds.pop(key) for key in ("memory", "pipeline") if key in speeds}}
    if settings.reference == "torch":
        row["torch"] = {**{key.removeprefix("torch_"): value for key, value in speeds.items()}, **unavailable}
        row["ours_over_torch"] = {mode: row["memory"]["median"] / found["median"]
                                  for mode, found in row["torch"].items() if isinstance(found, dict)}
    # Predictions use the fastest repeat: interference from other work only ever slows a repeat down
    # (timeit's rule). Before the tf.data autotuner was switched off, our repeats fell into two modes
    # (docs/performance.md), and a median of a few could land in either.
    row["step_seconds"] = settings.batch_size / row["memory"]["max"]
    if settings.stochastic_depth < 1:
        # Alternating steps of the two models, medians over steps x repeats: a dropped block's saving
        # is a per-step random variable, and this machine's speed drifts between repeats.
        dropping = timing.build(family, blocks, options=settings.options, stochastic_depth=settings.stochastic_depth)
        one_batch = (batches[0][:settings.batch_size], batches[1][:settings.batch_size])
        plain, dropped = (timing.summary(times) for times in timing.interleaved_step_seconds(
            model, dropping, one_batch, settings.steps * settings.repeats))
        row["stochastic_depth"] = {
            "p_L": settings.stochastic_depth, "plain_step_seconds": plain, "step_seconds": dropped,
            "saving": 1.0 - dropped["median"] / plain["median"],
            "expected_skipped": timing.expected_skipped(blocks, settings.stochastic_depth)}
    return row, model, batches


def memory_input(batches, settings: BenchSettings):
    """The in-memory batches as ``fit`` gets them: under TensorFlow (with ``--memory_input=dataset``)
    a tf.data dataset without the autotuner, as training's pipeline is (``data.without_autotune``);
    Keras' own adapter for arrays leaves it on, and its stall at the end of each ``fit``, not the
    model, set the pace of the bench's short fits."""
    if settings.backend != "tensorflow" or settings.memory_input == "arrays":
        return batches
    import tensorflow as tf

    from ml_resnet_tf.training import data

    tensors = tuple(tf.constant(array) for array in batches)
    return lambda: data.without_autotune(
        tf.data.Dataset.from_tensor_slices(tensors).batch(settings.batch_size).prefetch(data.PREFETCH))


def torch_works(family, blocks, model, batches, works, settings: BenchSettings):
    """Adds the PyTorch twin's trainers (eager, compiled) to ``works``; returns the modes that could
    not run, each with its reason in one line."""
    from ml_resnet_tf.bench import torch_twin

    unavailable = {}
    for mode in settings.torch_modes:
        net = torch_twin.build(family, blocks)
        torch_twin.check_same_net(net, model)
        epoch = torch_twin.trainer(net, *batches, settings.batch_size, compiled=mode == "compiled")
        try:
            epoch()  # compiles now, so that a failure is a note in the table, not the end of the run
        except Exception as error:  # torch.compile fails in many ways (no compiler, unsupported op)
            unavailable[mode] = f"unavailable: {type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
            continue
        works[f"torch_{mode}"] = epoch
    return unavailable


def interpolation_costs(rows, models_by_key, settings: BenchSettings):
    """For each measured architecture whose half is measured too: the cost of interpolating into it."""
    for row in rows:
        blocks = timing.parse_blocks(row["blocks"])
        source = (row["family"], "-".join(str(b // 2) for b in blocks))
        if all(b % 2 == 0 for b in blocks) and source in models_by_key:
            model, batches = models_by_key[source]
            row["interpolation_seconds"] = timing.interpolation_cost(model, batches, settings.batch_size,
                                                                     settings.options)


