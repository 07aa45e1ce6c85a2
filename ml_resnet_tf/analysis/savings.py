"""What finished runs' records say about the paper's promise (Section 4.2): the time a multi-level
run saved against its last-cycle model and against the block-count bound, accuracy over training
time, and how each interpolation's accuracy drop recovered. Readers of ``results.json`` dicts:
nothing here trains or times."""

from ml_resnet_tf.nets import costs


def predicted_saving(cycle_epochs, step_seconds, steps_per_epoch: int, interpolation_seconds=()) -> float:
    """1 - (multi-level time) / (last-cycle model's time) from measured step times per cycle's
    architecture, plus the interpolations' measured costs (Section 4.2 with real costs)."""
    multilevel = sum(e * steps_per_epoch * s for e, s in zip(cycle_epochs, step_seconds)) + sum(interpolation_seconds)
    return 1.0 - multilevel / (sum(cycle_epochs) * steps_per_epoch * step_seconds[-1])


def measured_saving(multilevel: dict, baseline: dict) -> dict:
    """The time a finished multi-level run saved against its last-cycle model, from their results.json.

    ``train_seconds`` leave out each fit's start-up (tracing, pipeline fill; see recorder.EpochRecorder),
    a fixed cost that a scaled-down run would otherwise charge to depth; the saving with it is
    reported beside. The bound is the block count's for the multi-level run's own cycle lengths
    (Section 4.2). Raises ValueError with one line when the two runs do not form a pair.
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
    ours, theirs = multilevel["final"], baseline["final"]
    bound = costs.time_saved([c["end_epoch"] - c["start_epoch"] for c in cycles],
                             [sum(c["blocks_per_stage"]) for c in cycles])
    saving = 1.0 - ours["train_seconds"] / theirs["train_seconds"]
    with_startup = ((ours["train_seconds"] + ours.get("startup_seconds", 0.0))
                    / (theirs["train_seconds"] + theirs.get("startup_seconds", 0.0)))
    return {"multilevel_seconds": ours["train_seconds"], "baseline_seconds": theirs["train_seconds"],
            "saving": saving, "blocks_bound": bound, "fraction_of_blocks_bound": saving / bound,
            "saving_with_startup": 1.0 - with_startup}


def accuracy_over_time(results: dict) -> list:
    """``(training seconds so far, test accuracy)`` after each epoch; an interpolation's time counts
    in the epoch after it, as in the cycle's time (``training.cycles.close_cycle``)."""
    switch = {i["epoch"]: i["seconds"] for i in results["interpolations"]}
    seconds, points = 0.0, []
    for epoch in results["epochs"]:
        seconds += epoch["train_seconds"] + switch.get(epoch["epoch"] - 1, 0.0)
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
