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


def figure_grid(path, title, panels, draw, note="", columns=3, labels=("", "")):
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
        ax.set(**{k: v for k, v in zip(("xlabel", "ylabel"), labels) if v})  # else draw's own
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

    return figure_grid(path, title, panels, draw, note, labels=("epoch", "accuracy (%)"))


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

    return figure_grid(path, "Fig. 3: mean residual norm gamma vs number of blocks d", panels, draw, note,
                   labels=("residual blocks d", "gamma = mean ||G(Y_j)||"))


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

    return figure_grid(path, "Fig. 4: norms of the input and output of each residual module", panels, draw, note,
                   labels=("block j", "L2 norm (mean over test images)"))


def f_norm_figure(path, panels, note=""):
    """Fig. 7: ``||F(Y_j)||`` against conceptual time ``(j - 1) h``; ``panels`` is
    ``[(title, [(label, norms), ...])]``."""
    def draw(ax, curves):
        for label, norms in curves:
            ax.plot([b["time"] for b in norms], [b["f_norm"] for b in norms], "o-", markersize=3, label=label)
        return bool(curves)

    return figure_grid(path, "Fig. 7: ||F(Y_j)|| against conceptual time", panels, draw, note,
                   labels=("conceptual time t = (j - 1) h", "||F(Y_j)||"))


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

    return figure_grid(path, title, panels, draw, note, labels=("", "test error (%)"))


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

    return figure_grid(path, "Fig. 9: effect of eta_max and eta_min in the cyclic learning rate", panels, draw, note,
                   labels=("eta_max", "final test accuracy (%)"))


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

    return figure_grid(path, "Fig. 10: effect of resetting the learning rate (mean, 95% interval over seeds)",
                   panels, draw, note, labels=("epoch", "test accuracy (%)"))


def headline_figure(path, entries, note="", net="ResNet-26"):
    """Test accuracy against training time, one line per run: ``(title, [(seconds, accuracy)], epochs at
    which it interpolated)``. A square marks the last epoch before each interpolation (``experiments.headline``)."""
    def draw(ax, runs):
        for title, points, switches in runs:
            minutes, accuracy = [p[0] / 60 for p in points], [100 * p[1] for p in points]
            line, = ax.plot(minutes, accuracy, marker=".", label=title)
            ax.plot([minutes[e - 1] for e in switches if 0 < e <= len(points)],
                    [accuracy[e - 1] for e in switches if 0 < e <= len(points)], "s", color=line.get_color())
        return bool(runs)

    return figure_grid(path, "Multi-level against the last-cycle model: test accuracy over training time",
                       [(f"{net}, CIFAR-10", entries)], draw, note, columns=1,
                       labels=("training time (minutes)", "test accuracy (%)"))


def gap_curve_figure(path, series, note=""):
    """The equal-epochs gap against epochs per cycle, one line per rule: ``{rule: [(epochs, mean, std)]}``
    in points, with the standard deviation over seeds as error bars and the 1-point band shaded
    (``experiments.headline_curve``)."""
    def draw(ax, lines):
        ax.axhspan(-1, 1, color="0.9", label="within 1 point")
        ax.axhline(0, color="0.5", lw=0.8)
        for rule, points in lines.items():
            ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                        capsize=3, label=f"{rule} rule")
        ax.set_xscale("log", base=2)
        return bool(lines)

    return figure_grid(path, "Equal-epochs gap of multi-level ResNet-26 against its last-cycle model",
                       [("mean ± std over seeds", series)], draw, note, columns=1,
                       labels=("epochs per cycle (three cycles)", "test accuracy gap (points)"))
