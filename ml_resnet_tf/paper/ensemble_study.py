"""The dynamic-ensemble analysis of trained runs (``ml_resnet_tf.analysis.ensemble``, notes §5) as a
report: the binary ``experiments.ensemble`` and the figure harness share its one writer."""

import dataclasses
import os

import numpy as np

from ml_resnet_tf.analysis import ensemble, probes
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.paper import ensemble_plots
from ml_resnet_tf.paper.studies import load_runs
from ml_resnet_tf.runs.records import write_json


def _distributions(rows, blocks):
    """``P(r)`` at the start and the end of every cycle, and of the analysed checkpoint."""
    chosen = [row for i, row in enumerate(rows)
              if row["at_start"] or i == 0 or i == len(rows) - 1 or row["cycle"] != rows[i + 1]["cycle"]]
    return ([(f"{'cycle ' + str(row['cycle']) + ' start' if row['at_start'] else 'epoch ' + str(row['epoch'])} "
              f"({row['num_blocks']} blocks)", ensemble.depth_distribution(list(row["gains"].values())).tolist())
             for row in chosen]
            + [("analysed checkpoint", ensemble.depth_distribution([b["gain"] for b in blocks]).tolist())])


@dataclasses.dataclass(frozen=True)
class EnsembleSettings:
    """How the analysis measures: on the first ``num_images`` test images (0: all), ``path_samples``
    sampled paths per length ``ks`` (empty: every length), ``lesion_draws`` random deletions, and
    gradients in batches of ``batch_size``. All but ``batch_size`` are written with the results."""

    num_images: int = 0
    path_samples: int = 1000
    ks: tuple = ()
    seed: int = 0
    lesion_draws: int = 3
    batch_size: int = 128

    def recorded(self) -> dict:
        return {**{k: v for k, v in dataclasses.asdict(self).items() if k != "batch_size"}, "ks": list(self.ks)}


def run_ensemble(model_dirs, settings: EnsembleSettings, data_dir: str = "", log=print) -> list:
    """The dynamic-ensemble analysis (``ml_resnet_tf.analysis.ensemble``, notes §5) of each run: the final (or
    latest) checkpoint's gains, depth distribution, gradient by path length and lesion cross-check, and
    the depth the trainer recorded at every epoch and around every interpolation."""
    entries = []
    for model_dir, model, results, images, labels in load_runs(model_dirs, data_dir, settings.num_images, log):
        blocks = probes.residual_norms(model, images)
        for entry, block in zip(blocks, odenet.blocks(model)):
            entry.update(stage=block.stage, downsampling=block.changes_shape, **ensemble.branch_scales(block))
        gains = {b["block"]: b["gain"] for b in blocks}
        rows = ensemble.history(results)
        label = (f"{os.path.basename(os.path.normpath(model_dir))}: "
                 f"{odenet.format_blocks(odenet.blocks_per_stage(model))}")
        entry = {
            "model_dir": model_dir, "label": label, "model": model.name, "family": model.spec.get("family", ""),
            "dataset": results["flags"]["dataset"], "blocks_per_stage": list(odenet.blocks_per_stage(model)),
            "status": results["status"], "epochs_trained": len(results["epochs"]),
            "test_error": results["epochs"][-1]["test_error"] if results["epochs"] else None,
            "num_images": int(len(images)), "blocks": blocks,
            "depth": {**ensemble.depth_summary(list(gains.values())),
                      "distribution": ensemble.depth_distribution(list(gains.values())).tolist()},
            "path_gradient": ensemble.gradient_by_length(
                model, images, labels, settings.path_samples, list(settings.ks) or None, settings.seed,
                settings.batch_size),
            "history": rows, "scale_correlation": ensemble.scale_correlation(rows),
            "interpolations": [{k: i[k] for k in ("epoch", "from_blocks", "to_blocks", "from_step_size",
                                                  "to_step_size")} for i in results["interpolations"]],
            "distributions": _distributions(rows, blocks) if rows else [],
        }
        if settings.lesion_draws:
            entry["lesion"] = ensemble.lesion_crosscheck(model, gains, images, labels, settings.lesion_draws,
                                                         np.random.default_rng(settings.seed))
        depth, window = entry["depth"], entry["path_gradient"]["window"]
        log(f"{model_dir}: {label}, mean path length {depth['mean_depth']:.2f} of {depth['num_blocks']} blocks "
            f"({depth['short_fraction']:.0%} of path weight below half depth); {GRADIENT_WORDS} "
            f"k = {window[0]}-{window[1]}" + ("" if rows else "; no per-epoch gains recorded (an older run)"))
        entries.append(entry)
    return entries


GRADIENT_WORDS = f"{ensemble.GRADIENT_SHARE:.0%} of the gradient flows along paths of length"


def _fixed(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def ensemble_table(entries) -> str:
    """Markdown: per run, the effective depth at the start and end of every cycle, and the final
    checkpoint's depth, gradient window and the two cross-checks."""
    lines = ["| run | effective depth by cycle: start → end (blocks) | final: mean / n | P(r < n/2) | "
             f"gradient: peak k, {ensemble.GRADIENT_SHARE:.0%} window | ρ(gain, lesion) | ρ(weight lost, error) | "
             "r(log a, log hγ‖W‖) | test acc. |", "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        cycles = {}
        for row in e["history"]:
            cycles.setdefault(row["cycle"], []).append(row)
        spans = "; ".join(f"{rows[0]['num_blocks']}: {rows[0]['mean_depth']:.2f} → {rows[-1]['mean_depth']:.2f}"
                          for rows in cycles.values()) or "not recorded"
        depth, gradient, lesion_check = e["depth"], e["path_gradient"], e.get("lesion", {})
        accuracy = "n/a" if e["test_error"] is None else f"{1 - e['test_error']:.1%}"
        lines.append(
            f"| {e['label']} | {spans} | {depth['mean_depth']:.2f} / {depth['num_blocks']} = "
            f"{depth['relative_depth']:.2f} | {depth['short_fraction']:.2f} | {gradient['peak_length']}, "
            f"{gradient['window'][0]}–{gradient['window'][1]} | "
            f"{_fixed(lesion_check.get('gain_vs_single_lesion_rho'))} | "
            f"{_fixed(lesion_check.get('weight_vs_error_rho'))} | {_fixed(e['scale_correlation'])} | {accuracy} |")
    lines += ["", "Batch-norm scale and gains within each cycle, first → last epoch (means over blocks):", "",
              "| run | cycle | blocks | h | gain a | BN |γ| | ‖W‖ last kernel | effective depth |",
              "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        for cycle in sorted({row["cycle"] for row in e["history"]}):
            rows = [row for row in e["history"] if row["cycle"] == cycle and not row["at_start"]]
            if rows:
                first, last = rows[0], rows[-1]
                spans = [f"{_fixed(first.get(k), 3)} → {_fixed(last.get(k), 3)}"
                         for k in ("mean_gain", "mean_bn_gamma", "mean_kernel_norm", "mean_depth")]
                lines.append(f"| {e['label']} | {cycle} | {last['num_blocks']} | {last['step_size']:g} | "
                             + " | ".join(spans) + " |")
    return "\n".join(lines) + "\n"


def write_ensemble(folder, entries, settings: EnsembleSettings, note="", suffix="", log=print):
    """``run_ensemble``'s outputs in ``folder``: ``ensemble.json`` (with ``settings``), the table
    ``ensemble.md`` (also logged) and the five PNGs. Returns their paths."""
    table = ensemble_table(entries)
    settings = {**settings.recorded(), "batch_norm": "inference", "gradient_at": "input of the first block",
                "gradient_share": ensemble.GRADIENT_SHARE}
    data_path, table_path = (os.path.join(folder, f"ensemble{suffix}.{ext}") for ext in ("json", "md"))
    write_json(data_path, {"settings": settings, "runs": entries})
    with open(table_path, "w") as f:
        f.write(table)
    log(table)
    return [data_path, table_path] + draw_ensemble_figures(folder, entries, note, suffix)


def draw_ensemble_figures(folder, entries, note="", suffix=""):
    """The ensemble analysis' five PNGs in ``folder``; returns their paths."""
    def out(name):
        return os.path.join(folder, f"ensemble-{name}{suffix}.png")

    return [ensemble_plots.ensemble_depth_figure(out("depth"), entries, note),
            ensemble_plots.ensemble_distribution_figure(out("distribution"), entries, note),
            ensemble_plots.ensemble_gains_figure(out("gains"), entries, note),
            ensemble_plots.ensemble_gradient_figure(out("gradient"), entries, note),
            ensemble_plots.ensemble_lesion_figure(out("lesion"), entries, note)]
