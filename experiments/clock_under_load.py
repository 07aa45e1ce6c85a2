"""Which training time does a busy machine not skew? The same short run, alone and beside a competitor.

    python -m experiments.clock_under_load [--data_dir=DIR] [--train_subset=2000] [--epochs=3]

Trains the headline's 4-4-4 ResNet-26 (``experiments/configs/headline/base.cfg``, no restarts) twice
with the same seed: once alone, once while a second ``experiments.train`` process trains the same net
on the same cores. Each epoch records its time on two clocks (``training.recorder``): wall and the
process's CPU time. The table gives each clock's total over the epochs and the loaded run's change;
the clock whose change stays within 5% is the one ``analysis.savings`` reads (docs/headline.md).
Spinning thread pools are the known risk of the CPU clock: a thread that waits for a core by spinning
is charged CPU time, so the measure is taken, not assumed.
"""

import os
import subprocess
import sys

from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.runs import records

flags.DEFINE_integer("epochs", 3, "Epochs of each measured run.")
common.define_harness_flags("table and JSON", "rewrites the table from the runs that exist")
flags.register_validator("epochs", lambda n: n >= 1, "--epochs must be at least 1")
FLAGS = flags.FLAGS
TOLERANCE = 0.05  # the change under load a clock may show and still count as load-proof


def command(epochs: int) -> list:
    """``experiments.train`` flags of one run of the experiment, but its folder."""
    return ["--flagfile=experiments/configs/headline/base.cfg", f"--epochs={epochs}", "--interpolate_at="]


def compare(alone: dict, loaded: dict) -> list:
    """One row per clock: its total over both runs' epochs, the change under load, and the verdict."""
    rows = []
    for clock, key in (("wall", "train_seconds"), ("process CPU", "train_cpu_seconds")):
        quiet, busy = (sum(e[key] for e in r["epochs"]) for r in (alone, loaded))
        rows.append({"clock": clock, "alone_seconds": quiet, "loaded_seconds": busy, "change": busy / quiet - 1,
                     "load_proof": abs(busy / quiet - 1) <= TOLERANCE})
    return rows


def table(rows: list) -> str:
    lines = ["| clock | alone (s) | beside a competing run (s) | change | within 5% |", "|---|---:|---:|---:|---|"]
    lines += [f"| {r['clock']} | {r['alone_seconds']:.1f} | {r['loaded_seconds']:.1f} | {r['change']:+.1%} | "
              f"{'yes' if r['load_proof'] else 'no'} |" for r in rows]
    return "\n".join(lines)


def _train_beside_competitor(run: tuple, root: str) -> list:
    """Trains ``run`` while another training process keeps the cores busy; returns the failures."""
    if records.is_finished(run[1]):
        return common.train_all([run], FLAGS.scale, FLAGS.train_subset, FLAGS.data_dir)
    rival = [sys.executable, "-m", "experiments.train", *command(1000),
             f"--model_dir={os.path.join(root, 'competitor')}", f"--train_subset={FLAGS.train_subset}"]
    rival += [f"--data_dir={FLAGS.data_dir}"] if FLAGS.data_dir else []
    competitor = subprocess.Popen(rival, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return common.train_all([run], FLAGS.scale, FLAGS.train_subset, FLAGS.data_dir)
    finally:
        competitor.terminate()
        competitor.wait()


def main(argv):
    reject_positional(argv)
    root = os.path.join(FLAGS.runs_dir, "clock" + common.scale_label(FLAGS.scale, FLAGS.train_subset))
    alone = ("alone", os.path.join(root, "alone"), command(FLAGS.epochs))
    loaded = ("beside a competitor", os.path.join(root, "loaded"), command(FLAGS.epochs))
    with common.one_line_errors():
        results_dir = common.output_folder(FLAGS.results_dir, "--results_dir")
        failed = []
        if FLAGS.train:
            failed = common.train_all([alone], FLAGS.scale, FLAGS.train_subset, FLAGS.data_dir)
            failed += _train_beside_competitor(loaded, root)
        found = [records.load_results(folder) for _, folder, _ in (alone, loaded)]
        common.require_runs(all(r and r["status"] == "finished" for r in found), root)
        rows = compare(*found)
        stem = os.path.join(results_dir, "clock-under-load" + common.scale_label(FLAGS.scale, FLAGS.train_subset))
        text = table(rows)
        with open(f"{stem}.md", "w") as f:
            f.write(f"# One run alone and beside a competing training process ({FLAGS.epochs} epochs, "
                    f"{FLAGS.train_subset or 'all'} images)\n\n{text}\n")
        records.write_json(f"{stem}.json", {"runs": [alone[1], loaded[1]], "rows": rows})
    print(text)
    print(f"wrote {stem}.md and {stem}.json")
    common.report_failures(failed)


if __name__ == "__main__":
    app.run(main)
