"""Does the equal-epochs gap close as cycles lengthen? The headline at several cycle lengths, over seeds.

    python -m experiments.headline_curve [--data_dir=DIR] [--train_subset=2000] [--cycle_lengths=2,4,8,16]
                                         [--seeds=2] [--rules=copy,zero]      (make headline-curve)

For each ``--cycle_lengths`` L (epochs per cycle, three cycles, restarts at L and 2L) it trains the
headline's arms (``ml_resnet_tf.paper.headline``: the 4-4-4 baseline and one multi-level run per rule)
with every seed, in the same folders as ``experiments.headline --cycle_epochs=L``, so either binary
reuses the other's runs. Seed 0 runs at every length first, then seed 1, so an interrupted curve
still has one whole line. It writes ``--results_dir/headline-curve[...].{md,json,png}``: per length
and rule the equal-epochs and equal-time gaps and the time saved as mean ± std, the plot of the gap
against L, and for each rule the shortest cycle length at which the gap's mean is within 1 point.
The paper's cycles are 60, 50 and 50 epochs; the curve says whether its regime is the one where the
gap closes.
"""

import os

from absl import app, flags

from ml_resnet_tf.cli import common, headline_flags
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import headline, plotting
from ml_resnet_tf.runs import records

flags.DEFINE_list("cycle_lengths", ["2", "4", "8", "16"], "Epochs per cycle of each point of the curve.")
flags.register_validator("cycle_lengths", lambda v: bool(v) and all(x.isdigit() and int(x) >= 1 for x in v),
                         "--cycle_lengths takes positive whole numbers of epochs, e.g. 2,4,8,16")
FLAGS = flags.FLAGS


def closing_length(points: list) -> int | None:
    """The shortest cycle length from which on every measured gap's mean is within 1 point."""
    for index, (length, _, _) in enumerate(points):
        if all(mean >= -1.0 for _, mean, _ in points[index:]):
            return length
    return None


def table(by_length: dict) -> str:
    lines = ["| epochs per cycle | rule | seeds | test acc. | baseline | equal-epochs gap | equal-time gap | "
             "time saved | share of bound | clock |", "|---|---|---|---|---|---|---|---|---|---|"]
    for length, summaries in by_length.items():
        for s in summaries:
            lines.append(f"| {length} | {s['rule']} | {s['seeds']} | {headline.cell(s, 'accuracy')} | "
                         f"{headline.cell(s, 'baseline_accuracy')} | {headline.cell(s, 'equal_epochs_gap', True)} | "
                         f"{headline.cell(s, 'equal_time_gap', True)} | {' | '.join(headline.saving_cells(s))} | "
                         f"{s['clock']} |")
    return "\n".join(lines)


def main(argv):
    reject_positional(argv)
    lengths = sorted({int(x) for x in FLAGS.cycle_lengths})
    label = headline_flags.label(FLAGS)
    plans = {length: headline.Plan(os.path.join(FLAGS.runs_dir, f"headline{label}-cycle{length}"), tuple(FLAGS.rules),
                                   FLAGS.seeds, length, False, *headline_flags.extra(FLAGS)) for length in lengths}
    planned = sorted((run for plan in plans.values() for run in headline.runs(plan)),
                     key=lambda run: (run.seed, run.cycle_epochs))
    with common.one_line_errors():
        results_dir = common.output_folder(FLAGS.results_dir, "--results_dir")
        failed, found = headline_flags.train_and_load(planned, FLAGS)
        by_length = {}
        for length, plan in plans.items():
            rows = headline.pairs(headline.runs(plan), found)
            if rows:
                by_length[length] = headline.summarise(rows)
        common.require_runs(bool(by_length), FLAGS.runs_dir)
        series = {}
        for length, summaries in by_length.items():
            for s in summaries:
                gap = s["equal_epochs_gap"]
                series.setdefault(s["rule"], []).append((length, 100 * gap["mean"], 100 * gap["std"]))
        verdicts = {rule: closing_length(points) for rule, points in series.items()}
        text = table(by_length) + "\n\n" + "\n".join(
            f"{rule}: " + (f"the mean gap is within 1 point from {length} epochs per cycle on" if length
                           else "the mean gap is not within 1 point at any measured length")
            for rule, length in verdicts.items())
        note = common.scale_note(FLAGS.scale, FLAGS.train_subset, "All 50,000 CIFAR-10 training images.")
        stem = os.path.join(results_dir, f"headline-curve{label}")
        with open(f"{stem}.md", "w") as f:
            f.write(f"# The equal-epochs gap against the cycle length (ResNet-26, CIFAR-10)\n\n{note}\n\n{text}\n")
        records.write_json(f"{stem}.json", {"note": note, "runs": [run.folder for run in planned],
                                            "summaries": by_length, "within_one_point_from": verdicts})
        plotting.gap_curve_figure(f"{stem}.png", series, note)
    print(text)
    print(f"wrote {stem}.md, {stem}.json and {stem}.png")
    common.report_failures(failed)


if __name__ == "__main__":
    app.run(main)
