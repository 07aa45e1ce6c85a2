"""What ``make bench`` concludes from its rows: Tables 3 and 4's schedules predicted from the measured
step times beside their bounds, the measured saving of finished run pairs, the targets, and the
printed tables.

Written without ``tables``/``training`` (which need TensorFlow), so that it runs under any backend.
"""

import numpy as np

from ml_resnet_tf.analysis import savings
from ml_resnet_tf.nets import costs
from ml_resnet_tf.runs import records

PAPER_STEPS_PER_EPOCH = 500  # CIFAR: 50,000 images in batches of 100
PAPER_EPOCHS = (60, 50, 50)  # Section 5.2: cycles end at epochs 60, 110 and 160
SCHEDULES = (("ResNet-50-i", "resnet", (2, 2, 2)), ("ResNet-122-i", "resnet", (5, 5, 5)),
             ("WResNet-50-i", "wresnet", (2, 2, 2)), ("WResNet-122-i", "wresnet", (5, 5, 5)))
TARGETS = {"pipeline": 2.0, "saving": 0.95, "interpolation": 0.01}


def schedules(rows):
    """Tables 3 and 4's multi-level rows whose every cycle was measured: predicted saving vs bounds."""
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
        predicted = savings.predicted_saving(PAPER_EPOCHS, [m["step_seconds"] for m in measured],
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
    results = []
    for folder in folders:
        try:
            found = records.load_results(folder)
        except records.RunError as error:
            raise ValueError(f"--measured_runs: {error}") from None
        if (found or {}).get("status") != "finished":
            raise ValueError(f"--measured_runs: {folder} holds no finished run; train it with experiments.train first")
        results.append(found)
    pairs = []
    for folder, multilevel, baseline in zip(folders[::2], results[::2], results[1::2]):
        try:
            pairs.append({"multilevel_run": folder, **savings.measured_saving(multilevel, baseline)})
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
        saved, share = savings.format_saving(p)
        print(f"measured ({p['clock']} clock): {p['multilevel_run']} {p['multilevel_seconds']:.1f} s against "
              f"{p['baseline_seconds']:.1f} s: saved {saved} ({p['saving_with_startup']:.1%} with start-up), "
              f"{share} of its {p['blocks_bound']:.1%} bound")
    for t in result["targets"]:
        print(f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']:.3g}")


