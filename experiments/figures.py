"""Reproduces the analysis figures: 3, 4, 7 (residual norms), the lesion study, 9 and 10 (learning rate),
and the dynamic-ensemble analysis.

    python -m experiments.figures [--figures=3,4,7,lesion,9,10,ensemble] [--datasets=cifar10] [--seeds=10]
                                  [--data_dir=DIR] [--scale=0.02 --train_subset=2000]

It trains the runs the chosen figures need (``experiments/configs/figures/*.cfg`` plus each
run's own flags, printed before it starts), one after another in
``--runs_dir/figures[-scale...]/``; finished runs are skipped and interrupted ones resume, as in
``experiments.reproduce``. Then it measures and draws from the finished runs:

* ``norms.json``, ``figure3.png``, ``figure4.png``, ``figure7.png``: residual norms of models
  trained as plain ResNets (one cosine cycle) at several depths and step sizes;
* ``lesion-DATASET.json`` / ``.png``: Section 3.3 on ResNet-110;
* ``figure9.png``: final test accuracy over an eta_max x eta_min grid for ResNet-50-i;
* ``figure10.png``: ResNet-50-i with and without the learning-rate reset, ``--seeds`` seeds each,
  mean and 95% interval;
* ``ensemble.json``, ``ensemble.md``, ``ensemble-*.png``: ``experiments.ensemble`` on ResNet-50-i and on
  ResNet-50 trained under the same cycles (effective depth per epoch, path lengths, gradient by path length).

Every output name carries the scaled-down label, so a trial never overwrites the real thing.
"""

import os

from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import ensemble_study, plotting, studies
from ml_resnet_tf.runs import records
from ml_resnet_tf.training import data

flags.DEFINE_list("figures", list(studies.FIGURES), "Figures to reproduce: any of 3,4,7,lesion,9,10,ensemble.")
flags.DEFINE_list("datasets", list(data.DATASETS), "Datasets to run, where a figure is drawn for them.")
flags.DEFINE_integer("seeds", 10, "Seeds per setting of Fig. 10 (the paper repeats each 10 times).")
flags.DEFINE_integer("num_images", 0, "Measure norms and lesions on the first N test images; 0 for all.")
flags.DEFINE_integer("draws", 5, "Random draws per lesion setting.")
flags.DEFINE_integer("path_samples", 1000, "Random paths per path length in the ensemble analysis.")
common.define_harness_flags("JSON and figures", "measures and draws from finished runs")
flags.register_validator("figures", lambda names: set(names) <= set(studies.FIGURES),
                         f"--figures takes a comma-separated subset of {','.join(studies.FIGURES)}")
flags.register_validator("datasets", lambda names: set(names) <= set(data.DATASETS),
                         f"--datasets takes a comma-separated subset of {','.join(data.DATASETS)}")
for _name in ("seeds", "draws", "path_samples"):
    flags.register_validator(_name, lambda n: n >= 1, f"--{_name} must be at least 1")
flags.register_validator("num_images", lambda n: n >= 0, "--num_images must not be negative")

FLAGS = flags.FLAGS


def main(argv):
    reject_positional(argv)
    suffix = common.scale_label(FLAGS.scale, FLAGS.train_subset)
    note = common.scale_note(FLAGS.scale, FLAGS.train_subset, "")
    root = os.path.join(FLAGS.runs_dir, f"figures{suffix}")
    with common.one_line_errors():  # before any training: a run of hours must not end on this
        common.output_folder(FLAGS.results_dir, "--results_dir")
    needed = {f: studies.figure_runs(f, FLAGS.datasets, FLAGS.seeds) for f in FLAGS.figures}
    unique = list({run.key: run for runs in needed.values() for run in runs}.values())
    failed = []
    if FLAGS.train:
        failed = common.train_all([(run.key, os.path.join(root, run.key), run.command_flags()) for run in unique],
                                  FLAGS.scale, FLAGS.train_subset, FLAGS.data_dir)

    def done(runs):
        return [os.path.join(root, run.key) for run in runs
                if records.is_finished(os.path.join(root, run.key))]

    with common.one_line_errors():
        common.require_runs(FLAGS.train or any(records.load_results(os.path.join(root, run.key)) for run in unique),
                            root)

    def out(name):  # norms.json -> results/norms-scale0.02.json
        return os.path.join(FLAGS.results_dir, name.replace(".", f"{suffix}.", 1))

    written = []
    with common.one_line_errors():
        norm_figures = [f for f in ("3", "4", "7") if f in needed]
        entries = studies.measure_norms(sorted({d for f in norm_figures for d in done(needed[f])}),
                                        FLAGS.data_dir, FLAGS.num_images)
        if entries:
            records.write_json(out("norms.json"), entries)
            written.append(out("norms.json"))
        for f in norm_figures:
            chosen = set(done(needed[f]))
            written += studies.draw_norm_figures(entries, {f: (out(f"figure{f}.png"),
                                                               [e for e in entries if e["model_dir"] in chosen])},
                                                 note)
        for model_dir in done(needed.get("lesion", [])):
            study = studies.run_lesion(model_dir, FLAGS.data_dir, FLAGS.num_images, FLAGS.draws)
            name = out(f"lesion-{study['dataset']}.json")
            records.write_json(name, study)
            written += [name, studies.draw_lesion_figure(name.replace(".json", ".png"), study, note)]
        chosen = done(needed.get("ensemble", []))
        if chosen:
            settings = ensemble_study.EnsembleSettings(FLAGS.num_images, FLAGS.path_samples,
                                                       lesion_draws=min(FLAGS.draws, 3))
            entries = ensemble_study.run_ensemble(chosen, settings, FLAGS.data_dir)
            written += ensemble_study.write_ensemble(FLAGS.results_dir, entries, settings, note, suffix)
    if "9" in needed:
        written.append(plotting.lr_grid_figure(out("figure9.png"), studies.lr_grid(root, FLAGS.datasets), note))
    if "10" in needed:
        written.append(plotting.lr_reset_figure(out("figure10.png"),
                                                studies.lr_reset(root, FLAGS.datasets, FLAGS.seeds), note))
    for path in written:
        print(f"wrote {path}")
    print(f"runs: tensorboard --logdir {root}")
    common.report_failures(failed)


if __name__ == "__main__":
    app.run(main)
