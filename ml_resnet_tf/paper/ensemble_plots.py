"""The dynamic-ensemble figures (``experiments.ensemble``): effective depth over training, the path-length
distribution, branch gains, the gradient by path length, and the lesion cross-check, one entry per run
(``ensemble_study.run_ensemble``)."""

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.ticker import MaxNLocator

from ml_resnet_tf.paper.plotting import figure_grid


def _number(value):
    return "n/a" if value is None else f"{value:.2f}"


def _twin(ax):
    """A right-hand axis drawn below ``ax``, so that ``ax``'s legend stays visible."""
    twin = ax.twinx()
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    return twin


def ensemble_depth_figure(path, entries, note=""):
    """Mean effective depth against epoch, in blocks and as a share of the net's blocks, for every run
    (``studies.run_ensemble`` entries). Squares are cycle starts (initialisation, or just after an
    interpolation, whose epoch is a dotted line), so an interpolation shows as a vertical step."""
    def draw(ax, key):
        drawn = False
        for index, entry in enumerate(entries):
            rows = entry["history"]
            if not rows:
                continue
            ax.plot([r["epoch"] for r in rows], [r[key] for r in rows], "-", color=f"C{index}", label=entry["label"])
            for marker, at_start in (("o", False), ("s", True)):
                chosen = [r for r in rows if r["at_start"] == at_start]
                ax.plot([r["epoch"] for r in chosen], [r[key] for r in chosen], marker, color=f"C{index}",
                        markersize=3 if marker == "o" else 5)
            for change in entry["interpolations"]:
                ax.axvline(change["epoch"], color=f"C{index}", linestyle=":", linewidth=1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            drawn = True
        return drawn

    panels = [("mean path length (blocks)", "mean_depth"), ("mean path length / blocks in the net", "relative_depth")]
    return figure_grid(path, "Effective depth over training (dynamic ensemble; squares: start of a cycle)",
                   panels, draw, note, columns=2, labels=("epochs trained", ""))


def ensemble_distribution_figure(path, entries, note=""):
    """``P(r)`` of each run at its chosen epochs (the first, and the last of every cycle) and now."""
    def draw(ax, entry):
        for index, (label, distribution) in enumerate(entry["distributions"]):
            ax.plot(range(len(distribution)), distribution, "o-", markersize=3, color=plt.cm.viridis(
                index / max(1, len(entry["distributions"]) - 1)), label=label)
        return bool(entry["distributions"])

    return figure_grid(path, "Path-length distribution P(r) implied by the branch gains", [
        (e["label"], e) for e in entries], draw, note, labels=("path length r (branches taken)", "P(r)"))


def ensemble_gains_figure(path, entries, note=""):
    """Every block's gain ``a_l`` against its relative position in the net, one line per recorded epoch
    (dark: early, light: late), and the final checkpoint's gains in black."""
    def draw(ax, entry):
        rows = entry["history"]
        for index, row in enumerate(rows):
            gains = list(row["gains"].values())
            ax.plot((np.arange(len(gains)) + 0.5) / len(gains), gains, "--" if row["at_start"] else "-", linewidth=1,
                    color=plt.cm.viridis(index / max(1, len(rows) - 1)),
                    label=f"{row['epoch']} epochs trained" if index in (0, len(rows) - 1) else None)
        final = [b["gain"] for b in entry["blocks"]]
        ax.plot((np.arange(len(final)) + 0.5) / len(final), final, "ko-", markersize=3, label="analysed checkpoint")
        ax.set_yscale("log")
        return True

    return figure_grid(path, "Branch gain a_l = ||G|| / ||S(Y)|| per block over training", [
        (e["label"], e) for e in entries], draw, note, labels=("block position (l - 1/2) / n", "gain a_l"))


def ensemble_gradient_figure(path, entries, note=""):
    """Veit et al.'s path-gradient plot: mean ``||dL/dY_1||`` of one path of length k (left axis, log) and
    the share of the total gradient that all paths of length k carry (right axis), window shaded."""
    def draw(ax, entry):
        rows = entry["path_gradient"]["per_length"]
        k = [r["k"] for r in rows]
        ax.semilogy(k, [r["gradient_mean"] for r in rows], "o-", markersize=3, label="one path (mean)")
        twin = _twin(ax)
        twin.plot(k, [r["share"] for r in rows], "s--", color="C1", markersize=3, label="all paths of length k")
        twin.set_ylabel("share of the gradient")
        low, high = entry["path_gradient"]["window"]
        ax.axvspan(low - 0.5, high + 0.5, color="C1", alpha=0.12,
                   label=f"{entry['path_gradient']['window_share']:.0%} of it: k = {low}-{high}")
        twin.legend(fontsize=8, loc="center right")
        return True

    return figure_grid(path, "Gradient at the first block by path length (Veit et al. 2016)", [
        (e["label"], e) for e in entries], draw, note, labels=("path length k", "||dL/dY_1|| of one path"))


def ensemble_lesion_figure(path, entries, note=""):
    """The two views side by side: each shape-keeping block's gain against the error its deletion adds,
    and, per number k of random deletions, the measured error against the path weight left."""
    panels = []
    for entry in entries:
        if entry.get("lesion"):
            panels += [(f"{entry['label']}: one block deleted", ("single", entry["lesion"])),
                       (f"{entry['label']}: k random blocks deleted", ("random", entry["lesion"]))]

    def draw(ax, job):
        kind, study = job
        if kind == "single":
            rows = [r for r in study["single_block"] if not r["downsampling"]]
            ax.plot([r["gain"] for r in rows], [100 * r["error_increase"] for r in rows], "o",
                    label=f"rank correlation {_number(study['gain_vs_single_lesion_rho'])}")
            ax.set(xlabel="gain a_l", ylabel="error increase (points)")
            return bool(rows)
        rows = study["random_deletions"]
        k = [r["removed"] for r in rows]
        ax.plot(k, [100 * r["mean_error"] for r in rows], "o-", markersize=3, label="measured test error")
        twin = _twin(ax)
        twin.plot(k, [r["surviving_path_weight"] for r in rows], "s--", color="C1", markersize=3,
                  label="path weight left (ensemble view)")
        twin.legend(fontsize=8, loc="center right")
        ax.set(xlabel="blocks deleted k", ylabel="test error (%)")
        return bool(rows)

    return figure_grid(path, "Ensemble view against the lesion study", panels or [("no lesion study", None)],
                   lambda ax, job: job is not None and draw(ax, job), note, columns=2)
