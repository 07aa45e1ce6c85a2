"""Matplotlib figures drawn from runs' results.json: one module for every figure.

Each figure is a row of panels; each panel draws curves, given as
``(label, results)`` pairs, against epoch. Interpolation epochs are marked
with dotted vertical lines, as in Figs. 6 and 8.
"""

import matplotlib

matplotlib.use("Agg")  # files only: no display on training machines or CI

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def accuracy_figure(path, title, panels, keys=("train_accuracy", "test_accuracy"), note=""):
    """Writes a PNG of accuracy against epoch.

    Args:
      path: the PNG to write.
      title: the figure's title.
      panels: ``[(panel_title, [(label, results), ...]), ...]``; a panel whose
        runs are all missing says so instead of staying blank.
      keys: which per-epoch records to draw, e.g. train and test accuracy.
      note: a line under the title, e.g. that the runs were scaled down.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    styles = {"train_accuracy": "-", "test_accuracy": "--"}
    for ax, (panel_title, curves) in zip(axes[0], panels):
        drawn = False
        for index, (label, results) in enumerate(curves):
            if not results or not results.get("epochs"):
                continue
            color = f"C{index}"
            epochs = [e["epoch"] for e in results["epochs"]]
            for key in keys:
                ax.plot(epochs, [100 * e[key] for e in results["epochs"]], styles.get(key, "-"), color=color,
                        label=f"{label} {key.split('_')[0]}")
            for change in results.get("interpolations", []):
                ax.axvline(change["epoch"] + 0.5, color=color, linestyle=":", linewidth=1)
            drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no finished runs", ha="center", va="center", transform=ax.transAxes)
        ax.set(title=panel_title, xlabel="epoch", ylabel="accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}\n{note}" if note else title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
