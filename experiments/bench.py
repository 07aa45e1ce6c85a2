"""Benchmarks the three places a multi-level run can lose its saving, and checks the targets.

    python -m experiments.bench [--families=resnet,wresnet] [--architectures=2-2-2,4-4-4,8-8-8]
                                [--batch_size=100 --steps=20 --repeats=3] [--backend=jax]

For each architecture: training images/s with data already in memory and through the real
``tf.data`` pipeline, counted FLOPs per image, and the cost of interpolating into it (from the
``interpolate`` call to the end of the first training step, compile included). Then the input
pipeline alone, and for the multi-level schedules of Tables 3 and 4 the time saved predicted from
the measured step times beside the block-count and FLOP bounds. ``--measured_runs`` adds the saving
that finished real runs measured, pair by pair. It prints a table and writes JSON.

``--reference=torch`` (the optional extra ``.[bench]``) also trains a native PyTorch twin of each
net (``experiments.torch_reference``: equal parameter counts, asserted), eager and under
``torch.compile``, taking turns with our trainer repeat by repeat, and prints ours over theirs.

``--backend=jax`` (or torch) measures the model only, with in-memory data: TensorFlow need not
be installed. Throughputs are medians over ``--repeats`` with the spread (min-max); step times,
and the predictions made from them, use the fastest repeat.
"""

import os
import platform
import sys

from absl import app, flags

from experiments.usage import new_file, reject_positional, write_measurement

flags.DEFINE_enum("backend", os.environ.get("KERAS_BACKEND", "tensorflow"), ["tensorflow", "jax", "torch"],
                  "Keras backend for the model; the input pipeline is measured under tensorflow only.")
flags.DEFINE_list("families", ["resnet", "wresnet"], "Registered model families (python -m experiments.models), "
                  "e.g. resnet (16-32-64), wresnet (32-64-128), lm_resnet.")
flags.DEFINE_float("stochastic_depth", 1.0, "Also time each architecture with stochastic depth at this p_L (e.g. 0.5) "
                   "and print its step-time saving beside the expected fraction of blocks skipped; 1: off.")
flags.DEFINE_list("architectures", ["2-2-2", "4-4-4", "8-8-8", "5-5-5", "10-10-10", "20-20-20"],
                  "Blocks per stage of each architecture to measure (default: every cycle of Tables 3 and 4).")
flags.DEFINE_integer("batch_size", 100, "Global batch size (the paper's for CIFAR).")
flags.DEFINE_integer("steps", 20, "Training steps per timed repeat.")
flags.DEFINE_integer("repeats", 3, "Timed repeats; the table shows their median and spread.")
flags.DEFINE_string("data_dir", "", "CIFAR-10 in its binary layout for the pipeline; default: random images.")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"], "XLA for the training step.")
flags.DEFINE_integer("steps_per_execution", 1, "Training steps per call into the compiled function.")
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"], "Keras dtype policy.")
flags.DEFINE_enum("reference", "none", ["none", "torch"], "Also time a native PyTorch twin of each net "
                  "(resnet and wresnet; pip install -e '.[bench]') in the same run.")
flags.DEFINE_list("torch_modes", ["eager", "compiled"], "With --reference=torch: eager, and compiled "
                  "(torch.compile; skipped with its reason where it fails, e.g. without a C++ compiler).")
flags.DEFINE_enum("memory_input", "dataset", ["dataset", "arrays"], "Under TensorFlow, how in-memory batches reach "
                  "fit: a tf.data dataset without the autotuner (what training uses), or the arrays themselves "
                  "(Keras' adapter, autotuner on: the stall of docs/performance.md).")
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow threads within one op; 0: TensorFlow's default.")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow ops run at once; 0: TensorFlow's default.")
flags.DEFINE_string("output", "", "JSON file to write; default results/bench-BACKEND.json.")
flags.DEFINE_list("measured_runs", [], "Finished run folders in pairs MULTILEVEL,BASELINE[,MULTILEVEL,BASELINE...] "
                  "(e.g. ResNet-50-i and ResNet-50 from experiments.train at --scale=0.025): their measured "
                  "saving joins the targets, the median over the pairs.")
flags.register_validator("measured_runs", lambda dirs: len(dirs) % 2 == 0,
                         "--measured_runs takes pairs of folders: MULTILEVEL,BASELINE[,MULTILEVEL,BASELINE...]")
flags.register_validator("torch_modes", lambda modes: set(modes) <= {"eager", "compiled"} and modes,
                         "--torch_modes takes eager and/or compiled")
for _name in ("intra_op_threads", "inter_op_threads"):
    flags.register_validator(_name, lambda n: n >= 0, f"--{_name} must be 0 (TensorFlow's default) or more")
for _name in ("batch_size", "steps", "repeats", "steps_per_execution"):
    flags.register_validator(_name, lambda n: n >= 1, f"--{_name} must be at least 1")
flags.register_validator("architectures", lambda names: all(
    len(a.split("-")) == 3 and all(p.isdigit() and int(p) > 0 for p in a.split("-")) for a in names),
    "--architectures takes blocks per stage such as 2-2-2,4-4-4")
flags.register_validator("stochastic_depth", lambda p: 0 < p <= 1, "--stochastic_depth is p_L, in (0, 1]")

FLAGS = flags.FLAGS
PAPER_STEPS_PER_EPOCH = 500  # CIFAR: 50,000 images in batches of 100
PAPER_EPOCHS = (60, 50, 50)  # Section 5.2: cycles end at epochs 60, 110 and 160
SCHEDULES = (("ResNet-50-i", "resnet", (2, 2, 2)), ("ResNet-122-i", "resnet", (5, 5, 5)),
             ("WResNet-50-i", "wresnet", (2, 2, 2)), ("WResNet-122-i", "wresnet", (5, 5, 5)))
TARGETS = {"pipeline": 2.0, "saving": 0.95, "interpolation": 0.01}


def measure(family, blocks, images, labels, make_dataset, options):
    """One architecture's row: FLOPs, throughput in memory and through the pipeline (and of the
    PyTorch twin), the model."""
    from ml_resnet_tf import benchmark

    model = benchmark.build(family, blocks, options=options)
    batches = benchmark.in_memory_batches(images, labels, FLAGS.batch_size, FLAGS.steps)
    works = {"memory": benchmark.fitting(model, memory_input(batches), FLAGS.batch_size, FLAGS.steps)}
    if make_dataset:
        works["pipeline"] = benchmark.fitting(model, make_dataset, FLAGS.batch_size, FLAGS.steps)
    unavailable = torch_works(family, blocks, model, batches, works) if FLAGS.reference == "torch" else {}
    speeds = benchmark.throughputs(works, FLAGS.batch_size * FLAGS.steps, FLAGS.repeats)
    row = {"family": family, "blocks": "-".join(map(str, blocks)), "flops_per_image": benchmark.flops(family, blocks),
           **{key: speeds.pop(key) for key in ("memory", "pipeline") if key in speeds}}
    if FLAGS.reference == "torch":
        row["torch"] = {**{key.removeprefix("torch_"): value for key, value in speeds.items()}, **unavailable}
        row["ours_over_torch"] = {mode: row["memory"]["median"] / found["median"]
                                  for mode, found in row["torch"].items() if isinstance(found, dict)}
    # Predictions use the fastest repeat: interference from other work only ever slows a repeat down
    # (timeit's rule). Before the tf.data autotuner was switched off, our repeats fell into two modes
    # (docs/performance.md), and a median of a few could land in either.
    row["step_seconds"] = FLAGS.batch_size / row["memory"]["max"]
    if FLAGS.stochastic_depth < 1:
        # Alternating steps of the two models, medians over steps x repeats: a dropped block's saving
        # is a per-step random variable, and this machine's speed drifts between repeats.
        dropping = benchmark.build(family, blocks, options=options, stochastic_depth=FLAGS.stochastic_depth)
        one_batch = (batches[0][:FLAGS.batch_size], batches[1][:FLAGS.batch_size])
        plain, dropped = (benchmark.summary(times) for times in benchmark.interleaved_step_seconds(
            model, dropping, one_batch, FLAGS.steps * FLAGS.repeats))
        row["stochastic_depth"] = {
            "p_L": FLAGS.stochastic_depth, "plain_step_seconds": plain, "step_seconds": dropped,
            "saving": 1.0 - dropped["median"] / plain["median"],
            "expected_skipped": benchmark.expected_skipped(blocks, FLAGS.stochastic_depth)}
    return row, model, batches


def memory_input(batches):
    """The in-memory batches as ``fit`` gets them: under TensorFlow (with ``--memory_input=dataset``)
    a tf.data dataset without the autotuner, as training's pipeline is (``data.without_autotune``);
    Keras' own adapter for arrays leaves it on, and its stall at the end of each ``fit``, not the
    model, set the pace of the bench's short fits."""
    if FLAGS.backend != "tensorflow" or FLAGS.memory_input == "arrays":
        return batches
    import tensorflow as tf

    from ml_resnet_tf import data

    tensors = tuple(tf.constant(array) for array in batches)
    return lambda: data.without_autotune(
        tf.data.Dataset.from_tensor_slices(tensors).batch(FLAGS.batch_size).prefetch(data.PREFETCH))


def torch_works(family, blocks, model, batches, works):
    """Adds the PyTorch twin's trainers (eager, compiled) to ``works``; returns the modes that could
    not run, each with its reason in one line."""
    from experiments import torch_reference

    unavailable = {}
    for mode in FLAGS.torch_modes:
        net = torch_reference.build(family, blocks)
        torch_reference.check_same_net(net, model)
        epoch = torch_reference.trainer(net, *batches, FLAGS.batch_size, compiled=mode == "compiled")
        try:
            epoch()  # compiles now, so that a failure is a note in the table, not the end of the run
        except Exception as error:  # torch.compile fails in many ways (no compiler, unsupported op)
            unavailable[mode] = f"unavailable: {type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
            continue
        works[f"torch_{mode}"] = epoch
    return unavailable


def interpolation_costs(rows, models_by_key, options):
    """For each measured architecture whose half is measured too: the cost of interpolating into it."""
    from ml_resnet_tf import benchmark

    for row in rows:
        blocks = benchmark.parse_blocks(row["blocks"])
        source = (row["family"], "-".join(str(b // 2) for b in blocks))
        if all(b % 2 == 0 for b in blocks) and source in models_by_key:
            model, batches = models_by_key[source]
            row["interpolation_seconds"] = benchmark.interpolation_cost(model, batches, FLAGS.batch_size, options)


def schedules(rows):
    """Tables 3 and 4's multi-level rows whose every cycle was measured: predicted saving vs bounds.

    Written without ``tables``/``training`` (which need TensorFlow), so that it runs under any backend.
    """
    from ml_resnet_tf import benchmark, costs

    by_key = {(r["family"], r["blocks"]): r for r in rows}
    found = []
    for label, family, start in SCHEDULES:
        cycles = [tuple(b * 2 ** i for b in start) for i in range(len(PAPER_EPOCHS))]
        keys = [(family, "-".join(map(str, blocks))) for blocks in cycles]
        if not all(k in by_key for k in keys):
            continue
        measured = [by_key[k] for k in keys]
        interpolations = [m.get("interpolation_seconds", 0.0) for m in measured[1:]]
        blocks_bound = costs.time_saved(PAPER_EPOCHS, [sum(c) for c in cycles])
        flops_bound = costs.time_saved(PAPER_EPOCHS, [m["flops_per_image"] for m in measured])
        predicted = benchmark.predicted_saving(PAPER_EPOCHS, [m["step_seconds"] for m in measured],
                                               PAPER_STEPS_PER_EPOCH, interpolations)
        found.append({
            "row": label, "cycles": [k[1] for k in keys], "epochs": list(PAPER_EPOCHS),
            "predicted_saving": predicted, "blocks_bound": blocks_bound, "flops_bound": flops_bound,
            "fraction_of_blocks_bound": predicted / blocks_bound,
            "interpolation_share": [s / (e * PAPER_STEPS_PER_EPOCH * m["step_seconds"])
                                    for s, e, m in zip(interpolations, PAPER_EPOCHS[1:], measured[1:])]})
    return found


def targets(result):
    """The three targets of the performance issue, each with its measured value and whether it is met."""
    checks = []
    rows = {(r["family"], r["blocks"]): r for r in result["architectures"]}
    if result.get("pipeline") and ("resnet", "2-2-2") in rows:
        ratio = result["pipeline"]["median"] / rows[("resnet", "2-2-2")]["memory"]["median"]
        checks.append(("pipeline delivers >= 2x the images/s ResNet 2-2-2 trains on", ratio,
                       ratio >= TARGETS["pipeline"]))
    for schedule in result["schedules"]:
        fraction = schedule["fraction_of_blocks_bound"]
        checks.append((f"{schedule['row']}: predicted saving >= 95% of the block-count bound", fraction,
                       fraction >= TARGETS["saving"]))
        share = max(schedule["interpolation_share"], default=0.0)
        checks.append((f"{schedule['row']}: interpolation < 1% of the cycle after it (paper scale)", share,
                       share < TARGETS["interpolation"]))
    if result.get("measured"):
        fraction = result["measured"]["median_fraction_of_blocks_bound"]
        checks.append((f"measured saving of {len(result['measured']['pairs'])} real run pair(s), median, "
                       ">= 95% of the block-count bound", fraction, fraction >= TARGETS["saving"]))
    return [{"target": t, "value": v, "met": bool(m)} for t, v, m in checks]


def measured_runs(folders):
    """The measured saving of each (multi-level, baseline) pair of finished runs, and their median."""
    import numpy as np

    from ml_resnet_tf import benchmark, records

    results = []
    for folder in folders:
        found = records.load_results(folder)
        if (found or {}).get("status") != "finished":
            raise ValueError(f"--measured_runs: {folder} holds no finished run; train it with experiments.train first")
        results.append(found)
    pairs = []
    for folder, multilevel, baseline in zip(folders[::2], results[::2], results[1::2]):
        try:
            pairs.append({"multilevel_run": folder, **benchmark.measured_saving(multilevel, baseline)})
        except ValueError as error:
            raise ValueError(f"--measured_runs: {folder} and its baseline: {error}") from None
    return {"pairs": pairs,
            "median_saving": float(np.median([p["saving"] for p in pairs])),
            "median_fraction_of_blocks_bound": float(np.median([p["fraction_of_blocks_bound"] for p in pairs]))}


def spread(s, scale=1.0):
    return f"{s['median'] * scale:,.0f} [{s['min'] * scale:,.0f}-{s['max'] * scale:,.0f}]"


def side_by_side(result):
    """Our trainer beside the PyTorch twin: medians [spread] and ours over theirs, per architecture."""
    rows = [r for r in result["architectures"] if "torch" in r]
    if not rows:
        return
    modes = list(rows[0]["torch"])
    print(f"\nside by side with native PyTorch {result['torch_version']} (same net, same parameter count, "
          f"in-memory batches, repeats taking turns), images/s")
    print("| model | blocks | ours | " + " | ".join(f"torch {m}" for m in modes) + " | "
          + " | ".join(f"ours / {m}" for m in modes) + " |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in modes * 2) + " |")
    for r in rows:
        theirs = [spread(r["torch"][m]) if isinstance(r["torch"][m], dict) else r["torch"][m] for m in modes]
        ratios = [f"{r['ours_over_torch'][m]:.2f}x" if m in r["ours_over_torch"] else "-" for m in modes]
        print(f"| {r['family']} | {r['blocks']} | {spread(r['memory'])} | {' | '.join(theirs)} | "
              f"{' | '.join(ratios)} |")


def print_report(result):
    print(f"\nbackend {result['backend']}, batch {result['batch_size']}, {result['steps']} steps x "
          f"{result['repeats']} repeats, in-memory batches as {result['memory_input']}, threads {result['threads']}, "
          f"jit_compile={result['jit_compile']}, "
          f"steps_per_execution={result['steps_per_execution']}, {result['mixed_precision']}")
    print("| model | blocks | MFLOPs/image | images/s in memory | images/s via pipeline | ms/step (fastest) | "
          "interpolation into it (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in result["architectures"]:
        pipeline = spread(r["pipeline"]) if "pipeline" in r else "-"
        cost = f"{r['interpolation_seconds']:.2f}" if "interpolation_seconds" in r else "-"
        print(f"| {r['family']} | {r['blocks']} | {r['flops_per_image'] / 1e6:,.1f} | {spread(r['memory'])} | "
              f"{pipeline} | {1000 * r['step_seconds']:.1f} | {cost} |")
    side_by_side(result)
    for r in result["architectures"]:
        if "stochastic_depth" in r:
            sd = r["stochastic_depth"]
            print(f"stochastic depth p_L={sd['p_L']:g}, {r['family']} {r['blocks']}: median "
                  f"{1000 * sd['step_seconds']['median']:.1f} ms/step against "
                  f"{1000 * sd['plain_step_seconds']['median']:.1f} without (alternating steps): step time saved "
                  f"{sd['saving']:.1%}, expected fraction of blocks skipped {sd['expected_skipped']:.1%}")
    if result.get("pipeline"):
        print(f"\ninput pipeline alone: {spread(result['pipeline'])} images/s")
    for s in result["schedules"]:
        print(f"{s['row']} ({' -> '.join(s['cycles'])}, epochs {'/'.join(map(str, s['epochs']))}): predicted saving "
              f"{s['predicted_saving']:.1%}, bounds {s['blocks_bound']:.1%} by blocks / "
              f"{s['flops_bound']:.1%} by FLOPs")
    for p in (result.get("measured") or {}).get("pairs", []):
        print(f"measured: {p['multilevel_run']} {p['multilevel_seconds']:.1f} s against {p['baseline_seconds']:.1f} s: "
              f"saved {p['saving']:.1%} ({p['saving_with_startup']:.1%} with start-up), "
              f"{p['fraction_of_blocks_bound']:.1%} of its {p['blocks_bound']:.1%} bound")
    for t in result["targets"]:
        print(f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']:.3g}")


def main(argv):
    reject_positional(argv)
    output = FLAGS.output or os.path.join("results", f"bench-{FLAGS.backend}.json")
    new_file(output, "--output")  # a path that cannot take the file fails now, not after the measuring
    os.environ["KERAS_BACKEND"] = FLAGS.backend  # before Keras is first imported
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from ml_resnet_tf import benchmark, registry

    unknown = set(FLAGS.families) - set(registry.FAMILIES)
    if unknown:
        print(f"error: --families: unknown {', '.join(sorted(unknown))}; choose from {', '.join(registry.FAMILIES)}",
              file=sys.stderr)
        sys.exit(1)
    if keras.backend.backend() != FLAGS.backend:
        print(f"error: Keras was already imported with the {keras.backend.backend()} backend; "
              f"run with KERAS_BACKEND={FLAGS.backend} instead of --backend", file=sys.stderr)
        sys.exit(1)
    try:  # before minutes of measuring: a wrong folder is a one-line error now
        measured = measured_runs(FLAGS.measured_runs) if FLAGS.measured_runs else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    torch_version = None
    if FLAGS.reference == "torch":
        others = sorted(set(FLAGS.families) - {"resnet", "wresnet"})
        if others:
            print(f"error: --reference=torch has a PyTorch twin of resnet and wresnet only, not {', '.join(others)}: "
                  "pass --families=resnet,wresnet", file=sys.stderr)
            sys.exit(1)
        try:
            import torch
        except ImportError:
            print("error: --reference=torch needs PyTorch: pip install -e '.[bench]'", file=sys.stderr)
            sys.exit(1)
        torch_version = torch.__version__
    threads = {"intra_op": FLAGS.intra_op_threads, "inter_op": FLAGS.inter_op_threads}
    if FLAGS.backend == "tensorflow":
        from ml_resnet_tf import threads as threading

        threads = threading.configure(FLAGS.intra_op_threads, FLAGS.inter_op_threads)
    keras.config.set_dtype_policy(FLAGS.mixed_precision)
    options = {"jit_compile": FLAGS.jit_compile, "steps_per_execution": FLAGS.steps_per_execution}
    images, labels = benchmark.synthetic_images(max(FLAGS.batch_size * FLAGS.steps, 10_000))
    make_dataset, pipeline = None, None
    if FLAGS.backend == "tensorflow":
        from experiments import common
        from ml_resnet_tf import data

        if FLAGS.data_dir:
            with common.one_line_errors():
                loaded = data.load("cifar10", FLAGS.data_dir, download=False)
            images, labels = loaded.train_images, loaded.train_labels

        def train_batches():
            return data.train_dataset(images, labels, 4, FLAGS.batch_size, 0, 0, 1_000)

        make_dataset = train_batches
        pipeline = benchmark.pipeline_throughput(make_dataset, FLAGS.batch_size, max(FLAGS.steps, 50), FLAGS.repeats)
    rows, built = [], {}
    for family in FLAGS.families:
        for text in FLAGS.architectures:
            print(f"measuring {family} {text} ...", flush=True)
            row, model, batches = measure(family, benchmark.parse_blocks(text), images, labels, make_dataset, options)
            rows.append(row)
            built[(family, row["blocks"])] = (model, batches)
    interpolation_costs(rows, built, options)
    result = {"backend": FLAGS.backend, "keras": keras.__version__,
              "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "batch_size": FLAGS.batch_size, "steps": FLAGS.steps, "repeats": FLAGS.repeats,
              "jit_compile": FLAGS.jit_compile, "steps_per_execution": FLAGS.steps_per_execution,
              "mixed_precision": FLAGS.mixed_precision, "data": FLAGS.data_dir or "random images",
              "pipeline": pipeline, "memory_input": FLAGS.memory_input, "threads": threads,
              "torch_version": torch_version, "architectures": rows}
    result["schedules"] = schedules(rows)
    result["measured"] = measured
    result["targets"] = targets(result)
    print_report(result)
    write_measurement(output, result)


if __name__ == "__main__":
    app.run(main)
