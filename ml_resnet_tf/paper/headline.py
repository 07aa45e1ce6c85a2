"""The headline's runs and numbers: multi-level against its last-cycle model, over seeds and cycle lengths.

The claim under test is Tables 3-4 and Fig. 6's: multi-level training matches the last-cycle model at
equal epochs, in less time. For each cycle length ``L`` (epochs per cycle; three cycles, restarts at
``L`` and ``2L``) and seed, the plan trains:

* ``baseline``: a fixed 4-4-4 ResNet-26 (h = 1) under the same restarts;
* ``multilevel-RULE``: 1-1-1 -> 2-2-2 -> 4-4-4, one per interpolation rule;
* ``budget`` (optional): a 4-4-4 trained on its own full three-cycle schedule for as many epochs as the
  multi-level run's block-epochs buy, rounded *up* (``budget_epochs``), so the equal-cost comparison
  is against an annealed model, never a mid-cycle snapshot, and the rounding favours the baseline.

Every gap is taken within a seed, then summarised over seeds as mean and sample standard deviation.
Times are read on the CPU clock where the runs have it (``analysis.savings.clock``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics

from ml_resnet_tf.analysis import savings

BASE = "--flagfile=experiments/configs/headline/base.cfg"
PAPER = "--flagfile=experiments/configs/headline/paper.cfg"  # Section 5.2: ResNet-50(-i), 160 epochs
SUMMARISED = ("accuracy", "baseline_accuracy", "equal_epochs_gap", "equal_time_gap", "equal_block_epochs_gap",
              "saving", "fraction_of_blocks_bound", "budget_accuracy", "equal_budget_gap")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to train: ``extra`` flags go to every run, the baselines' included, ``multilevel_extra``
    to the multi-level runs only."""

    root: str
    rules: tuple = ("copy", "zero")
    seeds: int = 1
    cycle_epochs: int = 3
    budget: bool = False
    extra: tuple = ()
    multilevel_extra: tuple = ()
    base: str = BASE  # the flagfile that names the last-cycle model
    start: tuple = (1, 1, 1)  # the multi-level runs' first cycle (ResNet-26's 4-4-4 halved twice)
    cycles: tuple = ()  # epochs of each of the three cycles; () for three of cycle_epochs

    @property
    def lengths(self) -> tuple:
        return self.cycles or (self.cycle_epochs,) * 3


def paper_plan(root: str, rules: tuple, seeds: int, budget: bool = False) -> Plan:
    """Section 5.2 on CIFAR-10: ResNet-50-i (2-2-2 -> 8-8-8) against ResNet-50, 160 epochs with the
    learning rate restarting at 60 and 110 (``experiments/configs/headline/paper.cfg``)."""
    return Plan(root, rules, seeds, budget=budget, base=PAPER, start=(2, 2, 2), cycles=(60, 50, 50))


@dataclasses.dataclass(frozen=True)
class Run:
    title: str
    folder: str
    flags: list
    arm: str  # baseline, budget or the interpolation rule
    seed: int
    cycle_epochs: int


def budget_epochs(plan: Plan) -> int:
    """Epochs of the last-cycle model that cost what the multi-level run's block-epochs do, rounded up."""
    blocks = [sum(plan.start) * 2 ** i for i in range(3)]  # e.g. 3, 6, 12 blocks per cycle
    return math.ceil(sum(e * b for e, b in zip(plan.lengths, blocks)) / blocks[-1])


def _schedule(lengths: tuple) -> list:
    """``experiments.train``'s flags for three cycles of ``lengths`` epochs."""
    return [f"--epochs={sum(lengths)}", f"--interpolate_at={lengths[0]},{lengths[0] + lengths[1]}"]


def _thirds(epochs: int) -> tuple:
    """Three cycles over ``epochs``, restarting at a third and two thirds."""
    first, second = round(epochs / 3), round(2 * epochs / 3)
    return first, second - first, epochs - second


def runs(plan: Plan) -> list:
    """Every run of ``plan``, seed by seed: baseline, the multi-level runs, then the budget baseline."""
    planned = []
    for seed in range(plan.seeds):
        folder = os.path.join(plan.root, f"seed{seed}")
        shared = [plan.base, f"--seed={seed}", *plan.extra]
        final = "-".join(str(4 * b) for b in plan.start)
        arms = [("baseline", f"baseline {final}", _schedule(plan.lengths))]
        arms += [(rule, f"multi-level, {rule} rule", _schedule(plan.lengths)
                  + [f"--start_blocks={','.join(map(str, plan.start))}", f"--interpolation_rule={rule}",
                     *plan.multilevel_extra])
                 for rule in plan.rules]
        if plan.budget:
            arms.append(("budget", f"{final} for {budget_epochs(plan)} epochs (equal block-epochs)",
                         _schedule(_thirds(budget_epochs(plan)))))
        planned += [Run(f"{title}, seed {seed}", os.path.join(folder, "multilevel-" + arm if arm in plan.rules
                                                              else arm), shared + schedule, arm, seed,
                        plan.lengths[0])
                    for arm, title, schedule in arms]
    return planned


def _last_within(points: list, budget: float) -> float:
    """The accuracy of the last ``(cost, accuracy)`` point within ``budget``; 0 where none is."""
    within = [accuracy for cost, accuracy in points if cost <= budget + 1e-9]
    return within[-1] if within else 0.0


def block_epochs(results: dict) -> list:
    """Blocks times epochs so far, after each epoch: the training cost the block-count bound counts."""
    blocks = {c["cycle"]: sum(c["blocks_per_stage"]) for c in results["cycles"]}
    total, points = 0, []
    for epoch in results["epochs"]:
        total += blocks[epoch["cycle"]]
        points.append(total)
    return points


def compare(multilevel: dict, baseline: dict, budget: dict | None = None) -> dict:
    """The headline numbers of one multi-level run against its seed's baseline (and budget baseline)."""
    saving = savings.measured_saving(multilevel, baseline)
    ours, theirs = (savings.accuracy_over_time(r, saving["clock"]) for r in (multilevel, baseline))
    equal_time = _last_within(theirs, ours[-1][0])
    cost, base_cost = block_epochs(multilevel), block_epochs(baseline)
    equal_cost = _last_within(list(zip(base_cost, [a for _, a in theirs])), cost[-1])
    row = {"rule": multilevel["flags"].get("interpolation_rule", "copy"), "epochs": len(multilevel["epochs"]),
           "accuracy": ours[-1][1], "baseline_accuracy": theirs[-1][1], "equal_epochs_gap": ours[-1][1] - theirs[-1][1],
           "baseline_accuracy_at_equal_time": equal_time, "equal_time_gap": ours[-1][1] - equal_time,
           "baseline_accuracy_at_equal_block_epochs": equal_cost, "equal_block_epochs_gap": ours[-1][1] - equal_cost,
           **saving, "interpolations": savings.recoveries(multilevel)}
    if budget is not None:
        row["budget_accuracy"] = budget["final"]["test_accuracy"]
        row["equal_budget_gap"] = ours[-1][1] - row["budget_accuracy"]
    return row


def pairs(planned: list, found: dict) -> list:
    """``compare`` for every finished multi-level run whose seed's baseline finished."""
    finished = {(run.arm, run.seed): found[run.folder] for run in planned
                if found.get(run.folder) and found[run.folder]["status"] == "finished"}
    return [compare(results, finished[("baseline", seed)], finished.get(("budget", seed)))
            for (arm, seed), results in finished.items() if arm not in ("baseline", "budget")
            and ("baseline", seed) in finished]


def spread(values: list) -> dict:
    """Mean, sample standard deviation (0 for one value) and count."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def summarise(rows: list) -> list:
    """One summary per rule: each number's mean and spread over seeds, and the targets on the means."""
    summaries = []
    for rule in dict.fromkeys(r["rule"] for r in rows):
        mine = [r for r in rows if r["rule"] == rule]
        summary = {"rule": rule, "seeds": len(mine), "clock": "cpu" if all(r["clock"] == "cpu" for r in mine)
                   else "wall", "above_bound": any(r["above_bound"] for r in mine),
                   **{key: spread([r[key] for r in mine]) for key in SUMMARISED if all(key in r for r in mine)}}
        summary["targets"] = {
            "equal epochs: within 1 point": summary["equal_epochs_gap"]["mean"] >= -0.01,
            "equal time: >= 1 point ahead": summary["equal_time_gap"]["mean"] >= 0.01,
            "time saved >= 95% of the block bound, never above": not summary["above_bound"]
            and summary["fraction_of_blocks_bound"]["mean"] >= 0.95}
        summaries.append(summary)
    return summaries


def cell(summary: dict, key: str, points: bool = False) -> str:
    """``mean ± std`` of one summarised number: accuracies in %, gaps in points."""
    if key not in summary:
        return "-"
    value = summary[key]
    if points:
        return f"{100 * value['mean']:+.2f} ± {100 * value['std']:.2f}"
    return f"{value['mean']:.2%} ± {100 * value['std']:.2f}"


def saving_cells(summary: dict) -> tuple:
    """``(time saved, share of the bound)`` cells; a saving above the bound is a measurement error,
    never printed as a result."""
    if summary["above_bound"]:
        return "measurement error: above the bound", "-"
    return (f"{summary['saving']['mean']:.1%} ± {100 * summary['saving']['std']:.1f}",
            f"{summary['fraction_of_blocks_bound']['mean']:.0%}")


def table(summaries: list, rows: list) -> str:
    """The headline table: one line per rule, every figure as mean ± standard deviation over seeds."""
    lines = ["| rule | seeds | test acc. | baseline, equal epochs | gap | gap at equal time | gap at equal "
             "block-epochs | budget baseline (own schedule) | gap | time saved | block bound | share of bound | "
             "clock | interpolations, first seed: before -> after -> after one epoch (epochs to recover) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        first = next(r for r in rows if r["rule"] == s["rule"])
        saved, share = saving_cells(s)
        lines.append(f"| {s['rule']} | {s['seeds']} | {cell(s, 'accuracy')} | {cell(s, 'baseline_accuracy')} | "
                     f"{cell(s, 'equal_epochs_gap', True)} | {cell(s, 'equal_time_gap', True)} | "
                     f"{cell(s, 'equal_block_epochs_gap', True)} | {cell(s, 'budget_accuracy')} | "
                     f"{cell(s, 'equal_budget_gap', True)} | {saved} | {first['blocks_bound']:.1%} | {share} | "
                     f"{s['clock']} | {savings.format_recoveries(first['interpolations'])} |")
    lines.append("")
    for s in summaries:
        lines.append(f"{s['rule']}: " + ", ".join(f"{name} {'met' if met else 'MISSED'}"
                                                  for name, met in s["targets"].items()))
    return "\n".join(lines)
