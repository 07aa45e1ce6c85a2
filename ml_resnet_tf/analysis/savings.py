"""What finished runs' records say about the paper's promise (Section 4.2): the time a multi-level
run saved against its last-cycle model and against the block-count bound, accuracy over training
time, and how each interpolation's accuracy drop recovered. Readers of ``results.json`` dicts:
nothing here trains or times.

Time is read on the CPU clock (``train_cpu_seconds``: the process's CPU time) wherever every run
compared trained on CPUs and has it, since another process sharing the cores stretches wall time but not the CPU time of
the same work (docs/headline.md, "A time that load cannot skew"). Runs recorded before schema 7 have
wall time only; a comparison that includes one reads wall time for all and says so (``clock``).
"""

from ml_resnet_tf.nets import costs

CLOCKS = {"cpu": ("train_cpu_seconds", "startup_cpu_seconds", "cpu_seconds"),
          "wall": ("train_seconds", "startup_seconds", "seconds")}
# A measured saving this far above the block-count bound is not physics but the machine's load.
BOUND_TOLERANCE = 0.01


def clock(*runs: dict) -> str:
    """``cpu`` where every run trained on CPUs only and carries CPU times, else ``wall``: on an
    accelerator the process's CPU time counts the host's share only, and a lent GPU is not shared."""
    timed = [e["train_cpu_seconds"] for r in runs for e in r["epochs"]] + \
        [i["cpu_seconds"] for r in runs for i in r["interpolations"]]
    on_cpu = all(s["device"] == "cpu" for r in runs for s in r["sessions"])
    return "cpu" if on_cpu and None not in timed else "wall"


def training_seconds(results: dict, which: str) -> tuple:
    """``(train, start-up)`` seconds of a finished run on clock ``which``."""
    train, startup, _ = CLOCKS[which]
    return results["final"][train], results["final"][startup]


def predicted_saving(cycle_epochs, step_seconds, steps_per_epoch: int, interpolation_seconds=()) -> float:
    """1 - (multi-level time) / (last-cycle model's time) from measured step times per cycle's
    architecture, plus the interpolations' measured costs (Section 4.2 with real costs)."""
    multilevel = sum(e * steps_per_epoch * s for e, s in zip(cycle_epochs, step_seconds)) + sum(interpolation_seconds)
    return 1.0 - multilevel / (sum(cycle_epochs) * steps_per_epoch * step_seconds[-1])


def measured_saving(multilevel: dict, baseline: dict) -> dict:
    """The time a finished multi-level run saved against its last-cycle model, from their results.json.

    The times leave out each fit's start-up (tracing, pipeline fill; see recorder.EpochRecorder),
    a fixed cost that a scaled-down run would otherwise charge to depth; the saving with it is
    reported beside. ``above_bound`` marks a saving the block count cannot explain. The bound is the
    block count's for the multi-level run's own cycle lengths (Section 4.2). Raises ValueError with one line
    when the two runs do not form a pair.
    """
    cycles = multilevel["cycles"]
    if len({tuple(c["blocks_per_stage"]) for c in cycles}) < 2:
        raise ValueError("the first run of a pair must be the multi-level one, and this one never interpolates: "
                         "pass MULTILEVEL,BASELINE")
    if not baseline["cycles"]:
        raise ValueError("the second run of a pair records no cycles: pass a baseline trained by experiments.train")
    if len({tuple(c["blocks_per_stage"]) for c in baseline["cycles"]}) > 1:
        raise ValueError("the second run of a pair must be a baseline, and this one interpolates: "
                         "pass MULTILEVEL,BASELINE")
    if baseline["cycles"][-1]["blocks_per_stage"] != cycles[-1]["blocks_per_stage"] \
            or baseline["cycles"][-1]["end_epoch"] != cycles[-1]["end_epoch"]:
        raise ValueError("the baseline must train the multi-level run's last architecture for as many epochs")
    which = clock(multilevel, baseline)
    (ours, ours_startup), (theirs, theirs_startup) = (training_seconds(r, which) for r in (multilevel, baseline))
    bound = costs.time_saved([c["end_epoch"] - c["start_epoch"] for c in cycles],
                             [sum(c["blocks_per_stage"]) for c in cycles])
    saving = 1.0 - ours / theirs
    return {"clock": which, "multilevel_seconds": ours, "baseline_seconds": theirs,
            "saving": saving, "blocks_bound": bound, "fraction_of_blocks_bound": saving / bound,
            "above_bound": saving > bound + BOUND_TOLERANCE,
            "saving_with_startup": 1.0 - (ours + ours_startup) / (theirs + theirs_startup)}


def format_saving(row: dict) -> tuple:
    """``(saving, share of bound)`` as table cells; a saving above the bound is a measurement error,
    printed as such, never as a result."""
    if row["above_bound"]:
        return f"{row['saving']:.1%} (measurement error: above the bound)", "-"
    return f"{row['saving']:.1%}", f"{row['fraction_of_blocks_bound']:.0%}"


def accuracy_over_time(results: dict, which: str = "wall") -> list:
    """``(training seconds so far on clock ``which``, test accuracy)`` after each epoch; an
    interpolation's time counts in the epoch after it, as in the cycle's time (``training.cycles.close_cycle``)."""
    train, _, change = CLOCKS[which]
    switch = {i["epoch"]: i[change] for i in results["interpolations"]}
    seconds, points = 0.0, []
    for epoch in results["epochs"]:
        seconds += epoch[train] + switch.get(epoch["epoch"] - 1, 0.0)
        points.append((seconds, epoch["test_accuracy"]))
    return points


def recoveries(results: dict) -> list:
    """Each interpolation: test accuracy before and right after it (the function's change alone), after
    the new cycle's first epoch (what the restarted learning rate did next), and the epochs until the
    run is back at the accuracy it had before (None: never, within the run)."""
    rows = []
    for change in results["interpolations"]:
        later = [e for e in results["epochs"] if e["epoch"] > change["epoch"]]
        back = next((e["epoch"] - change["epoch"] for e in later
                     if e["test_accuracy"] >= change["test_accuracy_before"]), None)
        rows.append({"epoch": change["epoch"], "before": change["test_accuracy_before"],
                     "after": change["test_accuracy_after"],
                     "after_first_epoch": later[0]["test_accuracy"] if later else None, "epochs_to_recover": back})
    return rows


def format_recoveries(rows: list) -> str:
    """``50.0% -> 30.0% -> 45.0% (2); ...``: :func:`recoveries` as a table cell."""
    return "; ".join(f"{r['before']:.1%} -> {r['after']:.1%} -> "
                     f"{'-' if r['after_first_epoch'] is None else format(r['after_first_epoch'], '.1%')} "
                     f"({r['epochs_to_recover'] or 'not'})" for r in rows) or "-"
