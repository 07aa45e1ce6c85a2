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
net (``ml_resnet_tf.bench.torch_twin``: equal parameter counts, asserted), eager and under
``torch.compile``, taking turns with our trainer repeat by repeat, and prints ours over theirs.

``--backend=jax`` (or torch) measures the model only, with in-memory data: TensorFlow need not
be installed. Throughputs are medians over ``--repeats`` with the spread (min-max); step times,
and the predictions made from them, use the fastest repeat.
"""

import os
import platform
import sys

from absl import app, flags

from ml_resnet_tf.cli.usage import new_file, reject_positional, write_measurement

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


def main(argv):
    reject_positional(argv)
    output = FLAGS.output or os.path.join("results", f"bench-{FLAGS.backend}.json")
    new_file(output, "--output")  # a path that cannot take the file fails now, not after the measuring
    os.environ["KERAS_BACKEND"] = FLAGS.backend  # before Keras is first imported
    import keras

    from ml_resnet_tf.bench import report, run, timing
    from ml_resnet_tf.nets import registry

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
        measured = report.measured_runs(FLAGS.measured_runs) if FLAGS.measured_runs else None
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
        from ml_resnet_tf.training import threads as threading

        threads = threading.configure(FLAGS.intra_op_threads, FLAGS.inter_op_threads)
    keras.config.set_dtype_policy(FLAGS.mixed_precision)
    settings = run.BenchSettings(
        backend=FLAGS.backend, batch_size=FLAGS.batch_size, steps=FLAGS.steps, repeats=FLAGS.repeats,
        stochastic_depth=FLAGS.stochastic_depth, reference=FLAGS.reference, torch_modes=tuple(FLAGS.torch_modes),
        memory_input=FLAGS.memory_input,
        options={"jit_compile": FLAGS.jit_compile, "steps_per_execution": FLAGS.steps_per_execution})
    images, labels = timing.synthetic_images(max(FLAGS.batch_size * FLAGS.steps, 10_000))
    make_dataset, pipeline = None, None
    if FLAGS.backend == "tensorflow":
        from ml_resnet_tf.cli import common
        from ml_resnet_tf.training import data

        if FLAGS.data_dir:
            with common.one_line_errors():
                loaded = data.load("cifar10", FLAGS.data_dir, download=False)
            images, labels = loaded.train_images, loaded.train_labels

        def train_batches():
            return data.train_dataset(images, labels, 4, FLAGS.batch_size, 0, range(1_000))

        make_dataset = train_batches
        pipeline = timing.pipeline_throughput(make_dataset, FLAGS.batch_size, max(FLAGS.steps, 50), FLAGS.repeats)
    rows, built = [], {}
    for family in FLAGS.families:
        for text in FLAGS.architectures:
            print(f"measuring {family} {text} ...", flush=True)
            row, model, batches = run.measure(family, timing.parse_blocks(text), images, labels, make_dataset,
                                               settings)
            rows.append(row)
            built[(family, row["blocks"])] = (model, batches)
    run.interpolation_costs(rows, built, settings)
    result = {"backend": FLAGS.backend, "keras": keras.__version__,
              "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "batch_size": FLAGS.batch_size, "steps": FLAGS.steps, "repeats": FLAGS.repeats,
              "jit_compile": FLAGS.jit_compile, "steps_per_execution": FLAGS.steps_per_execution,
              "mixed_precision": FLAGS.mixed_precision, "data": FLAGS.data_dir or "random images",
              "pipeline": pipeline, "memory_input": FLAGS.memory_input, "threads": threads,
              "torch_version": torch_version, "architectures": rows}
    result["schedules"] = report.schedules(rows)
    result["measured"] = measured
    result["targets"] = report.targets(result)
    report.print_report(result)
    write_measurement(output, result)


if __name__ == "__main__":
    app.run(main)
