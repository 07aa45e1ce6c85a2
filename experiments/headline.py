"""The headline: a multi-level run against its last-cycle model under the same cycles, on real data.

    python -m experiments.headline [--data_dir=DIR] [--train_subset=2000] [--rules=copy,zero]
                                   [--restart_warmup=0.5]      (make headline)

ResNet-26 on CIFAR-10 (``experiments/configs/headline/base.cfg``): three cycles of the paper's cosine
restarts (Eq. 9), multi-level 1-1-1 -> 2-2-2 -> 4-4-4 with each ``--rules`` interpolation rule, against
a fixed 4-4-4 with the same restarts. The claim under test is Tables 3-4 and Fig. 6's: multi-level
training matches the last-cycle model at equal epochs, in less time. The table gives, per rule:

* accuracy at equal epochs (both runs' last epoch);
* accuracy at equal wall time: the baseline's test accuracy at the last epoch it had finished when
  the multi-level run finished (training time as results.json counts it: steps and interpolations);
* the same at equal block-epochs (blocks times epochs, the cost model of the bound), which a busy
  machine cannot skew;
* the time saved, against the block-count bound of Section 4.2 (``savings.measured_saving``);
* each interpolation: test accuracy right before and right after it, after the new cycle's first
  epoch, and the epochs until the run is back at the accuracy it had before.

Runs go under ``--runs_dir/headline[-scale...]``, outputs to ``--results_dir/headline[...].{md,json,png}``.
Finished runs are skipped and interrupted ones resume, so rerunning does only what is left.
"""

import os

from absl import app, flags

from ml_resnet_tf.analysis import savings
from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import plotting
from ml_resnet_tf.runs import records
from ml_resnet_tf.transforms import interpolation

BASE = "--flagfile=experiments/configs/headline/base.cfg"
flags.DEFINE_list("rules", ["copy", "zero"], "Interpolation rules of the multi-level runs (copy is the paper's).")
flags.DEFINE_float("restart_warmup", 0.0, "Passed to every run, the baseline's included: epochs of learning-rate "
                                          "warm-up at each restart.")
common.define_harness_flags("table, JSON and plot", "rewrites the table and plot from the runs that exist")
flags.register_validator("rules", lambda rules: bool(rules) and set(rules) <= set(interpolation.RULES),
                         f"--rules takes a comma-separated subset of {','.join(interpolation.RULES)}")
flags.register_validator("restart_warmup", lambda w: 0 <= w < 3, "--restart_warmup must be in [0, 3) epochs")
FLAGS = flags.FLAGS


def runs(root: str, rules: list, warmup: float) -> list:
    """``(title, model_dir, flags)`` of the baseline, then one multi-level run per rule."""
    common_flags = [BASE] + ([f"--restart_warmup={warmup:g}"] if warmup else [])
    return [("baseline 4-4-4", os.path.join(root, "baseline"), common_flags)] + [
        (f"multi-level, {rule} rule", os.path.join(root, f"multilevel-{rule}"),
         common_flags + ["--start_blocks=1,1,1", f"--interpolation_rule={rule}"]) for rule in rules]


def _last_within(points: list, budget: float) -> float:
    """The accuracy of the last ``(cost, accuracy)`` point within ``budget``; 0 where none is."""
    within = [accuracy for cost, accuracy in points if cost <= budget + 1e-9]
    return within[-1] if within else 0.0


def _block_epochs(results: dict) -> list:
    """Blocks times epochs so far, after each epoch: the training cost the block-count bound counts."""
    blocks = {c["cycle"]: sum(c["blocks_per_stage"]) for c in results["cycles"]}
    total, points = 0, []
    for epoch in results["epochs"]:
        total += blocks[epoch["cycle"]]
        points.append(total)
    return points


def compare(multilevel: dict, baseline: dict) -> dict:
    """The headline numbers of one multi-level run against the baseline, and whether each target is met."""
    ours, theirs = savings.accuracy_over_time(multilevel), savings.accuracy_over_time(baseline)
    equal_time = _last_within(theirs, ours[-1][0])
    # The same comparison in block-epochs, the block-count bound's cost model: immune to a busy machine.
    cost, base_cost = _block_epochs(multilevel), _block_epochs(baseline)
    equal_cost = _last_within(list(zip(base_cost, [a for _, a in theirs])), cost[-1])
    saving = savings.measured_saving(multilevel, baseline)
    row = {"rule": multilevel["flags"].get("interpolation_rule", "copy"), "epochs": len(multilevel["epochs"]),
           "accuracy": ours[-1][1], "baseline_accuracy": theirs[-1][1], "equal_epochs_gap": ours[-1][1] - theirs[-1][1],
           "baseline_accuracy_at_equal_time": equal_time, "equal_time_gap": ours[-1][1] - equal_time,
           "baseline_accuracy_at_equal_block_epochs": equal_cost, "equal_block_epochs_gap": ours[-1][1] - equal_cost,
           **saving, "interpolations": savings.recoveries(multilevel)}
    row["targets"] = {"equal time: >= 1 point ahead": row["equal_time_gap"] >= 0.01,
                      "equal epochs: within 1 point": row["equal_epochs_gap"] >= -0.01,
                      "time saved >= 95% of the block bound": row["fraction_of_blocks_bound"] >= 0.95}
    return row


def table(rows: list) -> str:
    lines = ["| rule | test acc. | baseline, equal epochs | gap | baseline, equal time | gap | baseline, equal "
             "block-epochs | gap | time saved | block bound | share of bound | interpolations: before -> after -> "
             "after one epoch (epochs to recover) |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        changes = savings.format_recoveries(r["interpolations"])
        lines.append(f"| {r['rule']} | {r['accuracy']:.2%} | {r['baseline_accuracy']:.2%} | "
                     f"{100 * r['equal_epochs_gap']:+.2f} | {r['baseline_accuracy_at_equal_time']:.2%} | "
                     f"{100 * r['equal_time_gap']:+.2f} | {r['baseline_accuracy_at_equal_block_epochs']:.2%} | "
                     f"{100 * r['equal_block_epochs_gap']:+.2f} | {r['saving']:.1%} | {r['blocks_bound']:.1%} | "
                     f"{r['fraction_of_blocks_bound']:.0%} | {changes} |")
    lines.append("")
    for r in rows:
        lines.append(f"{r['rule']}: " + ", ".join(f"{name} {'met' if met else 'MISSED'}"
                                                   for name, met in r["targets"].items()))
    return "\n".join(lines)


def main(argv):
    reject_positional(argv)
    label = common.scale_label(FLAGS.scale, FLAGS.train_subset) + \
        (f"-warmup{FLAGS.restart_warmup:g}" if FLAGS.restart_warmup else "")
    planned = runs(os.path.join(FLAGS.runs_dir, f"headline{label}"), FLAGS.rules, FLAGS.restart_warmup)
    with common.one_line_errors():
        results_dir = common.output_folder(FLAGS.results_dir, "--results_dir")
        failed = common.train_all(planned, FLAGS.scale, FLAGS.train_subset, FLAGS.data_dir) if FLAGS.train else []
        found = [(title, records.load_results(folder)) for title, folder, _ in planned]
        finished = [(title, r) for title, r in found if r and r["status"] == "finished"]
        baseline = found[0][1] if finished and finished[0][0] == found[0][0] else None
        common.require_runs(baseline is not None and len(finished) > 1, os.path.dirname(planned[0][1]))
        rows = [compare(results, baseline) for _, results in finished[1:]]
        text = table(rows)
        note = common.scale_note(FLAGS.scale, FLAGS.train_subset, "All 50,000 CIFAR-10 training images, 9 epochs.")
        stem = os.path.join(results_dir, f"headline{label}")
        with open(f"{stem}.md", "w") as f:
            f.write(f"# Multi-level against the last-cycle model (ResNet-26, CIFAR-10)\n\n{note}\n\n{text}\n")
        records.write_json(f"{stem}.json", {"note": note, "runs": [folder for _, folder, _ in planned], "rows": rows})
        plotting.headline_figure(f"{stem}.png", [(title, savings.accuracy_over_time(r),
                                                  [c["epoch"] for c in r["interpolations"]]) for title, r in finished],
                                 note)
    print(text)
    print(f"wrote {stem}.md, {stem}.json and {stem}.png")
    common.report_failures(failed)


if __name__ == "__main__":
    app.run(main)
