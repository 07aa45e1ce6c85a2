"""The paper's analyses as reports: trained runs in, JSON and figures out (Sections 3.2-3.3, Appendices C-D).

The analysis binaries (``experiments.norms``, ``experiments.lesion``) and the figure
harness (``experiments.figures``) share these functions. The harness also finds here
which runs each figure needs (:func:`figure_runs`) and draws Figs. 9 and 10 from them.
"""

import dataclasses
import os

import numpy as np

from ml_resnet_tf.analysis import lesions, probes
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.paper import plotting
from ml_resnet_tf.runs.records import load_results, load_trained
from ml_resnet_tf.training import data
from ml_resnet_tf.transforms import interpolation

CONFIGS = os.path.join("experiments", "configs", "figures")
# Where the paper is silent on a figure's datasets, we follow its neighbours: Figs. 4 and 7 show CIFAR-10
# and CIFAR-100, so Fig. 3 does too; Fig. 9 and the lesion study use CIFAR-10; Fig. 10 names all three.
FIGURE_DATASETS = {"3": ("cifar10", "cifar100"), "4": ("cifar10", "cifar100"), "7": ("cifar10", "cifar100"),
                   "lesion": ("cifar10",), "9": ("cifar10",), "10": ("cifar10", "cifar100", "stl10"),
                   "ensemble": ("cifar10",)}
FIGURES = tuple(FIGURE_DATASETS)
DEPTHS = ("resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")  # Fig. 3, all with h = 1
STEP_SIZES = (("resnet32", 1.0), ("resnet62", 0.5), ("resnet122", 0.25))  # Fig. 7 (Appendix C)
LESIONED = "resnet110"  # Section 3.3 studies ResNet-110, as Fig. 4 does
# Fig. 9's grid (the paper names neither axis's values; its best is eta_max = 0.5, eta_min = 0.001).
ETA_MAX = (0.05, 0.1, 0.2, 0.5, 1.0)
ETA_MIN = (0.0001, 0.001, 0.01)


@dataclasses.dataclass(frozen=True)
class StudyRun:
    """One training run a figure needs: ``experiments.train --flagfile=FLAGFILE FLAGS...`` in ``key``."""

    key: str  # its folder under the runs root
    flagfile: str
    flags: tuple

    def command_flags(self):
        return (f"--flagfile={os.path.join(CONFIGS, self.flagfile)}",) + self.flags


def norms_run(model, step_size, dataset):
    return StudyRun(f"norms/{model}_h{step_size:g}_{dataset}", "norms.cfg",
                    (f"--model={model}", f"--step_size={step_size:g}", f"--dataset={dataset}"))


def grid_run(eta_max, eta_min, dataset):
    return StudyRun(f"figure9/lrmax{eta_max:g}_lrmin{eta_min:g}_{dataset}", "figure9.cfg",
                    (f"--lr_max={eta_max:g}", f"--lr_min={eta_min:g}", f"--dataset={dataset}"))


def reset_run(restart, seed, dataset):
    return StudyRun(f"figure10/{'reset' if restart else 'noreset'}_seed{seed}_{dataset}", "figure10.cfg",
                    (f"--{'' if restart else 'no'}lr_restart", f"--seed={seed}", f"--dataset={dataset}"))


def ensemble_run(multilevel, dataset):
    return StudyRun(f"ensemble/resnet50{'_i' if multilevel else ''}_{dataset}", "ensemble.cfg",
                    (("--start_blocks=2,2,2",) if multilevel else ()) + (f"--dataset={dataset}",))


def figure_runs(figure, datasets, seeds=10):
    """The runs ``figure`` (one of FIGURES) needs on those of ``datasets`` it is drawn for."""
    chosen = [d for d in FIGURE_DATASETS[figure] if d in datasets]
    if figure == "3":
        return [norms_run(m, 1.0, d) for d in chosen for m in DEPTHS]
    if figure in ("4", "lesion"):
        return [norms_run(LESIONED, 1.0, d) for d in chosen]
    if figure == "7":
        return [norms_run(m, h, d) for d in chosen for m, h in STEP_SIZES]
    if figure == "ensemble":
        return [ensemble_run(multilevel, d) for d in chosen for multilevel in (True, False)]
    if figure == "9":
        return [grid_run(a, b, d) for d in chosen for b in ETA_MIN for a in ETA_MAX]
    return [reset_run(r, s, d) for d in chosen for r in (True, False) for s in range(seeds)]


def load_runs(model_dirs, data_dir="", num_images=0, log=print):
    """Yields ``(model_dir, model, results, images, labels)`` for each trained run, with its
    dataset's first ``num_images`` test images (0: all), standardized; each dataset is read once.
    ``data_dir`` overrides where the runs found their data."""
    cache = {}
    for model_dir in model_dirs:
        model, results, path = load_trained(model_dir)
        flags = results["flags"]
        if results["status"] != "finished":
            log(f"{model_dir}: run not finished, analysing its checkpoint {path}")
        key = (flags["dataset"], data_dir or flags.get("data_dir", ""))
        if key not in cache:
            images = data.load(key[0], key[1] or None, flags.get("download", True))
            count = num_images or len(images.test_images)
            cache[key] = data.standardize(images.test_images[:count]).numpy(), images.test_labels[:count]
        yield (model_dir, model, results) + cache[key]


def measure_norms(model_dirs, data_dir="", num_images=0, log=print):
    """Per run: its gamma (Fig. 3) and per-block norms (Figs. 4 and 7), as JSON-ready dicts."""
    entries = []
    for model_dir, model, results, images, _ in load_runs(model_dirs, data_dir, num_images, log):
        norms = probes.residual_norms(model, images)
        entries.append({
            "model_dir": model_dir, "model": model.name, "dataset": results["flags"]["dataset"],
            "blocks_per_stage": list(odenet.blocks_per_stage(model)), "num_blocks": len(norms),
            "step_size": odenet.step_size(model), "epochs_trained": len(results["epochs"]),
            "test_error": results["epochs"][-1]["test_error"], "num_images": int(len(images)),
            "gamma": probes.mean_residual_norm(norms), "blocks": norms})
        log(f"{model_dir}: {model.name}, {len(norms)} blocks, h={entries[-1]['step_size']:g}, "
            f"gamma={entries[-1]['gamma']:.4g}")
    return entries


def _by_dataset(entries):
    grouped = {}
    for entry in entries:
        grouped.setdefault(entry["dataset"], []).append(entry)
    return [(data.DATASETS[name].title, group) for name, group in grouped.items()]


def _label(entry):
    return f"{entry['model']} ({odenet.format_blocks(entry['blocks_per_stage'])}), h={entry['step_size']:g}"


def draw_norm_figures(entries, paths, note=""):
    """Figs. 3, 4 and 7 from ``measure_norms`` entries; ``paths`` maps '3', '4', '7' to (PNG, entries)
    pairs or leaves a figure out."""
    drawers = {
        "3": lambda path, chosen: plotting.gamma_figure(
            path, [(title, [(e["num_blocks"], e["gamma"]) for e in group]) for title, group in _by_dataset(chosen)],
            note),
        "4": lambda path, chosen: plotting.block_norms_figure(
            path, [(f"{data.DATASETS[e['dataset']].title}: {_label(e)}", e["blocks"]) for e in chosen], note),
        "7": lambda path, chosen: plotting.f_norm_figure(
            path, [(title, [(_label(e), e["blocks"]) for e in group]) for title, group in _by_dataset(chosen)],
            note),
    }
    return [drawers[figure](path, chosen) for figure, (path, chosen) in paths.items() if chosen]


def run_lesion(model_dir, data_dir="", num_images=0, draws=5, seed=0, max_removed=0, log=print):
    """The lesion study of Section 3.3 on one trained run, with where it came from."""
    (model_dir, model, results, images, labels), = load_runs([model_dir], data_dir, num_images, log)
    study = lesions.lesion_study(model, images, labels, draws, seed, max_removed)
    study.update(model_dir=model_dir, dataset=results["flags"]["dataset"])
    worst = max(study["eq8"], key=lambda check: check["relative_error"])
    log(f"{model_dir}: intact test error {study['test_error']:.2%}; Eq. 8 holds to a relative "
        f"{worst['relative_error']:.1e} (worst: {worst['block']})")
    return study


def interpolation_costs(model_dir: str, data_dir: str = "", num_images: int = 0, bn_batches: int = 20,
                        log=print) -> dict:
    """What interpolating a trained run costs before any training step, per rule (issue 15): test
    accuracy of the model, of the grown one, and of the grown one after ``bn_batches`` batches of
    batch-norm re-estimation on training images; with the top-1 agreement and relative logit change."""
    model, results, _ = load_trained(model_dir)
    flags = results["flags"]
    loaded = data.load(flags["dataset"], data_dir or flags.get("data_dir") or None, flags.get("download", True))
    count = num_images or len(loaded.test_images)
    images, labels = data.standardize(loaded.test_images[:count]).numpy(), loaded.test_labels[:count]
    batch = data.DATASETS[flags["dataset"]].batch_size
    train = data.standardize(loaded.train_images[:bn_batches * batch]).numpy()
    before = model.predict(images, batch_size=250, verbose=0)
    rows = []
    for rule in interpolation.RULES:
        grown = interpolation.interpolate(model, rule)
        after = grown.predict(images, batch_size=250, verbose=0)
        interpolation.reestimate_batch_norm(grown, train, batch)
        refreshed = grown.predict(images, batch_size=250, verbose=0)
        rows.append({"rule": rule, "step_size": odenet.step_size(grown),
                     "blocks_per_stage": list(odenet.blocks_per_stage(grown)),
                     "accuracy_after": float(np.mean(after.argmax(-1) == labels)),
                     "accuracy_after_bn": float(np.mean(refreshed.argmax(-1) == labels)),
                     **probes.logit_agreement(before, after)})
        log(f"{rule}: test accuracy {np.mean(before.argmax(-1) == labels):.2%} -> {rows[-1]['accuracy_after']:.2%}, "
            f"{rows[-1]['accuracy_after_bn']:.2%} with batch norm re-estimated on {len(train)} training images")
    return {"model_dir": model_dir, "model": model.name, "blocks_per_stage": list(odenet.blocks_per_stage(model)),
            "step_size": odenet.step_size(model), "num_images": count, "bn_images": len(train),
            "accuracy": float(np.mean(before.argmax(-1) == labels)), "rules": rows}


def draw_lesion_figure(path, study, note=""):
    title = (f"Lesion study (Section 3.3): {study['model']} ({odenet.format_blocks(study['blocks_per_stage'])}) "
             f"on {data.DATASETS[study['dataset']].title}, {study['num_images']} test images")
    return plotting.lesion_figure(path, study, title, note)


def _results(runs_root, run):
    return load_results(os.path.join(runs_root, run.key))


def lr_grid(runs_root, datasets):
    """Fig. 9's data: per dataset, ``{eta_min: [(eta_max, final test accuracy)]}`` of finished runs."""
    panels = []
    for dataset in [d for d in FIGURE_DATASETS["9"] if d in datasets]:
        lines = {b: [] for b in ETA_MIN}
        for b in ETA_MIN:
            for a in ETA_MAX:
                results = _results(runs_root, grid_run(a, b, dataset))
                if results and results["status"] == "finished":
                    lines[b].append((a, results["final"]["test_accuracy"]))
        panels.append((data.DATASETS[dataset].title, lines))
    return panels


def lr_reset(runs_root, datasets, seeds):
    """Fig. 10's data: per dataset, the results of every seed with and without the reset."""
    return [(data.DATASETS[d].title,
             [(label, [_results(runs_root, reset_run(restart, s, d)) for s in range(seeds)])
              for label, restart in (("with reset", True), ("without reset", False))])
            for d in FIGURE_DATASETS["10"] if d in datasets]
