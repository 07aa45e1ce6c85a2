"""Matplotlib figures drawn from runs' results and the analyses' JSON: one module for every figure.

Each figure is a grid of panels with a title and an optional note (e.g. that the
runs were scaled down). A panel without data says so instead of staying blank.
"""

import math
import textwrap

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines or CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# Two-sided 95% Student t quantiles for 1..30 degrees of freedom; 1.96 beyond (Fig. 10's intervals).
_T95 = (12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _figure(path, title, panels, draw, note="", columns=3, xlabel="", ylabel=""):
    """Draws ``draw(ax, data)`` for each ``(panel_title, data)``; ``draw`` returns False when it had
    nothing to draw. Writes the PNG and returns ``path``."""
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (panel_title, data) in zip(axes.flat, panels):
        if draw(ax, data):
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(panel_title)
        ax.set(**{k: v for k, v in (("xlabel", xlabel), ("ylabel", ylabel)) if v})  # else draw's own
        ax.grid(alpha=0.3)
    fig.suptitle(textwrap.fill(f"{title}. {note}" if note else title, width=75 * columns), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confidence_interval(samples):
    """Mean and half-width of the two-sided 95% Student t interval of ``samples`` (rows)."""
    samples = np.asarray(samples, dtype=float)
    n = len(samples)
    mean = samples.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    t = _T95[n - 2] if n - 1 <= len(_T95) else 1.96
    return mean, t * samples.std(axis=0, ddof=1) / math.sqrt(n)


def accuracy_figure(path, title, panels, keys=("train_accuracy", "test_accuracy"), note=""):
    """Accuracy against epoch (Figs. 6, 8, 11); ``panels`` is ``[(title, [(label, results), ...])]``.
    Interpolation epochs are dotted vertical lines."""
    styles = {"train_accuracy": "-", "test_accuracy": "--"}

    def draw(ax, curves):
        drawn = False
        for index, (label, results) in enumerate(curves):
            if not results or not results.get("epochs"):
                continue
            epochs = [e["epoch"] for e in results["epochs"]]
            for key in keys:
                ax.plot(epochs, [100 * e[key] for e in results["epochs"]], styles.get(key, "-"), color=f"C{index}",
                        label=f"{label} {key.split('_')[0]}")
            for change in results.get("interpolations", []):
                ax.axvline(change["epoch"] + 0.5, color=f"C{index}", linestyle=":", linewidth=1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            drawn = True
        return drawn

    return _figure(path, title, panels, draw, note, xlabel="epoch", ylabel="accuracy (%)")


def gamma_figure(path, panels, note=""):
    """Fig. 3: gamma against the number of blocks d, with the least-squares fit c / d of Eq. 5.
    ``panels`` is ``[(title, [(d, gamma), ...])]``."""
    def draw(ax, points):
        if not points:
            return False
        d, gamma = np.array(sorted(points), dtype=float).T
        c = float(np.sum(gamma / d) / np.sum(1 / d ** 2))
        grid = np.linspace(d.min(), d.max(), 100)
        ax.plot(d, gamma, "o-", label="measured")
        ax.plot(grid, c / grid, "--", label=f"{c:.3g} / d")
        return True

    return _figure(path, "Fig. 3: mean residual norm gamma vs number of blocks d", panels, draw, note,
                   xlabel="residual blocks d", ylabel="gamma = mean ||G(Y_j)||")


def block_norms_figure(path, panels, note=""):
    """Fig. 4: ``||Y_j||`` and ``||G(Y_j)||`` per block; ``panels`` is ``[(title, norms)]``."""
    def draw(ax, norms):
        index = [b["index"] for b in norms]
        ax.plot(index, [b["input_norm"] for b in norms], "o-", markersize=3, label="||Y_j|| (input)")
        ax.plot(index, [b["residual_norm"] for b in norms], "s-", markersize=3, label="||G(Y_j)|| (residual)")
        for b in norms[1:]:
            if b["block"].endswith("_block1"):
                ax.axvline(b["index"] - 0.5, color="gray", linestyle=":", linewidth=1)
        return bool(norms)

    return _figure(path, "Fig. 4: norms of the input and output of each residual module", panels, draw, note,
                   xlabel="block j", ylabel="L2 norm (mean over test images)")


def f_norm_figure(path, panels, note=""):
    """Fig. 7: ``||F(Y_j)||`` against conceptual time ``(j - 1) h``; ``panels`` is
    ``[(title, [(label, norms), ...])]``."""
    def draw(ax, curves):
        for label, norms in curves:
            ax.plot([b["time"] for b in norms], [b["f_norm"] for b in norms], "o-", markersize=3, label=label)
        return bool(curves)

    return _figure(path, "Fig. 7: ||F(Y_j)|| against conceptual time", panels, draw, note,
                   xlabel="conceptual time t = (j - 1) h", ylabel="||F(Y_j)||")


def lesion_figure(path, study, title, note=""):
    """Section 3.3: test error after deleting one block, k random blocks, or shuffling a stage."""
    baseline = 100 * study["test_error"]

    def single(ax, rows):
        for downsampling, color, label in ((False, "C0", "block keeping its shape"),
                                           (True, "C3", "downsampling block (residual removed, shortcut kept)")):
            chosen = [(j, 100 * r["test_error"]) for j, r in enumerate(rows, start=1)
                      if r["downsampling"] == downsampling]
            if chosen:
                ax.bar(*zip(*chosen), color=color, label=label)
        lowest = min([100 * r["test_error"] for r in rows] + [baseline])
        ax.set_ylim(bottom=max(0.0, lowest - 5))  # differences of a point or two must show
        return True

    def random(ax, rows):
        mean = [100 * np.mean(r["test_errors"]) for r in rows]
        spread = [100 * np.std(r["test_errors"]) for r in rows]
        ax.errorbar([r["removed"] for r in rows], mean, yerr=spread, fmt="o-", markersize=3, capsize=2,
                    label=f"mean +- std over {study['draws']} draws")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return bool(rows)

    def shuffled(ax, rows):
        labels = [f"stage {r['stages']}" if r["stages"] != "all" else "all stages" for r in rows]
        for x, r in enumerate(rows):
            ax.plot([x] * len(r["test_errors"]), [100 * e for e in r["test_errors"]], "o", color="C0", alpha=0.6)
        ax.set_xticks(range(len(rows)), labels)
        ax.plot([], [], "o", color="C0", label="one shuffle")
        return True

    panels = [("delete one block (x: block j)", (single, study["single_block"])),
              ("delete k random blocks (x: k)", (random, study["random_deletions"])),
              ("shuffle the blocks of a stage", (shuffled, study["shuffles"]))]

    def draw(ax, job):
        ax.axhline(baseline, color="gray", linestyle="--", label=f"intact model {baseline:.1f}%")
        return job[0](ax, job[1])

    return _figure(path, title, panels, draw, note, ylabel="test error (%)")


def lr_grid_figure(path, panels, note=""):
    """Fig. 9: final test accuracy against eta_max, one line per eta_min; ``panels`` is
    ``[(title, {eta_min: [(eta_max, accuracy), ...]})]`` (missing runs left out)."""
    def draw(ax, lines):
        for eta_min, points in sorted(lines.items()):
            if points:
                x, y = zip(*sorted(points))
                ax.plot(x, [100 * a for a in y], "o-", label=f"eta_min = {eta_min:g}")
        ax.set_xscale("log")
        return any(lines.values())

    return _figure(path, "Fig. 9: effect of eta_max and eta_min in the cyclic learning rate", panels, draw, note,
                   xlabel="eta_max", ylabel="final test accuracy (%)")


def lr_reset_figure(path, panels, note=""):
    """Fig. 10: test accuracy against epoch, mean and 95% interval over seeds, with and without the
    learning-rate reset; ``panels`` is ``[(title, [(label, [results of each seed]), ...])]``."""
    def draw(ax, curves):
        drawn = False
        for index, (label, runs) in enumerate(curves):
            runs = [r for r in runs if r and r.get("status") == "finished"]
            if not runs:
                continue
            epochs = [e["epoch"] for e in runs[0]["epochs"]]
            mean, half = confidence_interval([[100 * e["test_accuracy"] for e in r["epochs"]] for r in runs])
            ax.plot(epochs, mean, color=f"C{index}", label=f"{label} (n = {len(runs)})")
            ax.fill_between(epochs, mean - half, mean + half, color=f"C{index}", alpha=0.25)
            drawn = True
        return drawn

    return _figure(path, "Fig. 10: effect of resetting the learning rate (mean, 95% interval over seeds)",
                   panels, draw, note, xlabel="epoch", ylabel="test accuracy (%)")


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
    return _figure(path, "Effective depth over training (dynamic ensemble; squares: start of a cycle)",
                   panels, draw, note, columns=2, xlabel="epochs trained")


def ensemble_distribution_figure(path, entries, note=""):
    """``P(r)`` of each run at its chosen epochs (the first, and the last of every cycle) and now."""
    def draw(ax, entry):
        for index, (label, distribution) in enumerate(entry["distributions"]):
            ax.plot(range(len(distribution)), distribution, "o-", markersize=3, color=plt.cm.viridis(
                index / max(1, len(entry["distributions"]) - 1)), label=label)
        return bool(entry["distributions"])

    return _figure(path, "Path-length distribution P(r) implied by the branch gains", [
        (e["label"], e) for e in entries], draw, note, xlabel="path length r (branches taken)", ylabel="P(r)")


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

    return _figure(path, "Branch gain a_l = ||G|| / ||S(Y)|| per block over training", [
        (e["label"], e) for e in entries], draw, note, xlabel="block position (l - 1/2) / n", ylabel="gain a_l")


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

    return _figure(path, "Gradient at the first block by path length (Veit et al. 2016)", [
        (e["label"], e) for e in entries], draw, note, xlabel="path length k", ylabel="||dL/dY_1|| of one path")


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

    return _figure(path, "Ensemble view against the lesion study", panels or [("no lesion study", None)],
                   lambda ax, job: job is not None and draw(ax, job), note, columns=2)


def headline_figure(path, entries, note=""):
    """Test accuracy against training time, one line per run: ``(title, [(seconds, accuracy)], epochs at
    which it interpolated)``. A square marks the last epoch before each interpolation (``experiments.headline``)."""
    def draw(ax, runs):
        for title, points, switches in runs:
            minutes, accuracy = [p[0] / 60 for p in points], [100 * p[1] for p in points]
            line, = ax.plot(minutes, accuracy, marker=".", label=title)
            ax.plot([minutes[e - 1] for e in switches if 0 < e <= len(points)],
                    [accuracy[e - 1] for e in switches if 0 < e <= len(points)], "s", color=line.get_color())
        return bool(runs)

    return _figure(path, "Multi-level against the last-cycle model: test accuracy over training time",
                   [("ResNet-26, CIFAR-10", entries)], draw, note, columns=1, xlabel="training time (minutes)",
                   ylabel="test accuracy (%)")
