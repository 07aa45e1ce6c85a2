"""Memory mode of ``make bench``: peak memory and step time of training, with and without
memory-efficient (reversible) backpropagation.

    make bench BENCH_MODE=memory
    python -m experiments.bench_memory [--family=hamiltonian] [--architectures=6-6-6,18-18-18,54-54-54]
                                       [--batch_size=32 --repeats=3] [--backend=jax]

Each (architecture, mode) runs in a fresh process, because a peak never comes down
(``timing.training_memory``): on a GPU the allocator's peak, on a CPU the process's peak
resident set. The targets compare the growth from the smallest to the largest architecture:
the memory-efficient peak may grow by at most 10% of what the standard peak grows, at a step
time at most 1.6x the standard one. Two peaks are checked: the step's (what a training step adds
to the memory in use before it: activations and gradients, the target's subject) and the whole
process's (which also holds the compiled step, a graph that grows with depth in both modes). Under
JAX a third: the compiled step's temporary memory from XLA's own analysis (``timing.compiled_step_memory``),
which is what a GPU would hold during the step.
Prints a table and writes JSON.
"""

import json
import os
import platform
import subprocess
import sys

from absl import app, flags

from ml_resnet_tf.cli.usage import new_file, reject_positional, write_measurement

flags.DEFINE_enum("backend", os.environ.get("KERAS_BACKEND", "tensorflow"), ["tensorflow", "jax", "torch"],
                  "Keras backend.")
flags.DEFINE_string("family", "hamiltonian", "A reversible family.")
flags.DEFINE_list("architectures", ["6-6-6", "18-18-18", "54-54-54"], "Blocks per stage, smallest first.")
flags.DEFINE_integer("batch_size", 32, "Images per training step.")
flags.DEFINE_integer("repeats", 3, "Timed steps after two warm-up steps; the table shows the median.")
flags.DEFINE_string("output", "", "JSON file to write; default results/bench-memory-BACKEND.json.")
flags.DEFINE_string("worker", "", "Internal: measure one ARCHITECTURE:MODE in this process and print JSON.")
for _name in ("batch_size", "repeats"):
    flags.register_validator(_name, lambda n: n >= 1, f"--{_name} must be at least 1")
flags.register_validator("architectures", lambda names: len(names) >= 2 and all(
    len(a.split("-")) == 3 and all(p.isdigit() and int(p) > 0 for p in a.split("-")) for a in names),
    "--architectures takes two or more blocks per stage such as 6-6-6,54-54-54")
FLAGS = flags.FLAGS
MODES = ("standard", "memory_efficient")
TARGETS = {"growth": 0.10, "time": 1.6}


def worker(spec: str) -> None:
    from ml_resnet_tf.bench import timing

    architecture, mode = spec.split(":")
    row = timing.training_memory(FLAGS.family, timing.parse_blocks(architecture), mode == MODES[1],
                                    FLAGS.batch_size, FLAGS.repeats)
    print(json.dumps(row))


def measure(architecture: str, mode: str) -> dict:
    command = [sys.executable, "-m", "experiments.bench_memory", f"--worker={architecture}:{mode}",
               f"--family={FLAGS.family}", f"--batch_size={FLAGS.batch_size}", f"--repeats={FLAGS.repeats}"]
    # Tensors of 64 KiB and more are mmap-ed, so freeing one returns it and the resident set follows
    # the live tensors (timing.reset_peak_memory).
    env = {**os.environ, "KERAS_BACKEND": FLAGS.backend, "TF_CPP_MIN_LOG_LEVEL": "2", "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{architecture} {mode} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def targets(rows: list[dict]) -> list[dict]:
    by = {(r["blocks"], r["memory_efficient"]): r for r in rows}
    small, large = FLAGS.architectures[0], FLAGS.architectures[-1]
    checks = []
    peaks = [("step_bytes", "step's peak"), ("peak_bytes", "process peak")]
    if all(r.get("compiled") for r in rows):  # under JAX: what XLA's compiled step needs, as a GPU would hold it
        for r in rows:
            r["compiled_temp_bytes"] = r["compiled"]["temp_bytes"]
        peaks.append(("compiled_temp_bytes", "compiled step's temporary memory (XLA)"))
    for key, what in peaks:
        growth = [by[(large, me)][key] - by[(small, me)][key] for me in (False, True)]
        ratio = growth[1] / growth[0] if growth[0] > 0 else float("inf")
        checks.append({"target": f"memory-efficient {what} grows from {small} to {large} by <= 10% of the "
                                 "standard growth", "value": ratio, "met": ratio <= TARGETS["growth"]})
    for architecture in FLAGS.architectures:
        slow = (by[(architecture, True)]["step_seconds"]["median"]
                / by[(architecture, False)]["step_seconds"]["median"])
        checks.append({"target": f"{architecture}: memory-efficient step time <= 1.6x standard", "value": slow,
                       "met": slow <= TARGETS["time"]})
    return checks


def main(argv):
    reject_positional(argv)
    if FLAGS.worker:
        return worker(FLAGS.worker)
    output = FLAGS.output or os.path.join("results", f"bench-memory-{FLAGS.backend}.json")
    new_file(output, "--output")  # a path that cannot take the file fails now, not after the measuring
    from ml_resnet_tf.nets import registry

    family = registry.FAMILIES.get(FLAGS.family)
    if family is None or not family.reversible:
        reversible = ", ".join(f.name for f in registry.FAMILIES.values() if f.reversible)
        print(f"error: --family={FLAGS.family} is not a reversible family; choose from {reversible}", file=sys.stderr)
        sys.exit(1)
    rows = []
    for architecture in FLAGS.architectures:
        for mode in MODES:
            print(f"measuring {FLAGS.family} {architecture} {mode} ...", flush=True)
            rows.append(measure(architecture, mode))
    result = {"backend": FLAGS.backend, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "batch_size": FLAGS.batch_size, "repeats": FLAGS.repeats, "rows": rows, "targets": targets(rows)}
    print(f"{'blocks':<10} {'mode':<17} {'params':>10} {'built MiB':>9} {'before step':>11} {'process peak':>12} "
          f"{'step MiB':>9} {'XLA temp':>9} {'step s':>7}  source")
    for r in rows:
        mode = MODES[r["memory_efficient"]]
        temp = f"{r['compiled']['temp_bytes'] / 2**20:>9.1f}" if r.get("compiled") else f"{'-':>9}"
        print(f"{r['blocks']:<10} {mode:<17} {r['params']:>10,} {r['built_bytes'] / 2**20:>9.0f} "
              f"{r['before_bytes'] / 2**20:>11.0f} {r['peak_bytes'] / 2**20:>12.0f} "
              f"{r['step_bytes'] / 2**20:>9.0f} {temp} {r['step_seconds']['median']:>7.3f}  {r['memory_source']}")
    for t in result["targets"]:
        print(f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']:.3g}")
    write_measurement(output, result)


if __name__ == "__main__":
    app.run(main)
