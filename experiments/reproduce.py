"""Reproduces Table 3 (ResNets) or Table 4 (Wide ResNets), then writes the table and the curves.

    python -m experiments.reproduce --table=3 [--datasets=cifar10] [--data_dir=DIR]
                                    [--scale=0.02 --train_subset=2000]

Every cell's run is ``python -m experiments.train --flagfile=experiments/configs/tableN/KEY_DATASET.cfg``,
started one after another in its own folder under ``--runs_dir``. A finished run is skipped and an
interrupted one resumes, so rerunning the command only does what is left. A failed run is
reported and the others go on. Run it from the repository root, where the flagfiles are.
"""

import os

from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import plotting, tables
from ml_resnet_tf.runs import records

flags.DEFINE_enum("table", "3", ["3", "4"], "3: ResNets, 4: Wide ResNets.")
flags.DEFINE_list("datasets", list(tables.DATASETS), "Datasets to run (columns of the table).")
common.define_harness_flags("tables and figures", "rewrites tables and figures")
flags.register_validator("datasets", lambda names: set(names) <= set(tables.DATASETS),
                         f"--datasets takes a comma-separated subset of {','.join(tables.DATASETS)}")

FLAGS = flags.FLAGS


def label():
    return common.scale_label(FLAGS.scale, FLAGS.train_subset)


def note():
    return common.scale_note(FLAGS.scale, FLAGS.train_subset,
                             "Settings of Section 5.2: 160 epochs, cycles restarting at epochs 60 and 110.")


def run_all(table, runs_root):
    """Trains every missing run of ``table``; returns the cells that failed."""
    runs = [(f"{row.label} on {dataset}", tables.run_dir(runs_root, row, dataset),
             [f"--flagfile={tables.config_path(table, row, dataset)}"])
            for row in tables.TABLES[table] for dataset in FLAGS.datasets]
    return common.train_all(runs, FLAGS.scale, FLAGS.train_subset, FLAGS.data_dir)


def figures(runs_roots, suffix):
    """Figs. 6, 8 and 11 from whichever of their runs exist; returns the files written."""
    def runs(table, key, dataset):
        row = next(r for r in tables.TABLES[table] if r.key == key)
        return row.label, records.load_results(tables.run_dir(runs_roots[table], row, dataset))

    def multilevel(dataset):
        return [runs(3, "resnet50_i", dataset), runs(4, "wresnet50_i", dataset)]

    def baselines(dataset):
        return [runs(3, "resnet14", dataset), runs(3, "resnet50", dataset)]

    specs = [
        ("figure6", "Fig. 6: multi-level ResNet-50-i and WResNet-50-i",
         [("CIFAR-10", multilevel("cifar10")), ("CIFAR-100", multilevel("cifar100"))],
         ("train_accuracy", "test_accuracy")),
        ("figure8", "Fig. 8: multi-level ResNet-50-i and WResNet-50-i on STL-10",
         [("STL-10", multilevel("stl10"))], ("train_accuracy", "test_accuracy")),
        ("figure11", "Fig. 11: shallow (first-cycle) and deep (last-cycle) ResNets",
         [("CIFAR-10", baselines("cifar10")), ("CIFAR-100", baselines("cifar100"))], ("train_accuracy",)),
    ]
    written = []
    for name, title, panels, keys in specs:
        if any(results for _, curves in panels for _, results in curves):
            path = os.path.join(FLAGS.results_dir, f"{name}{suffix}.png")
            plotting.accuracy_figure(path, title, panels, keys=keys, note=note())
            written.append(path)
    return written


def main(argv):
    reject_positional(argv)
    table, suffix = int(FLAGS.table), label()
    with common.one_line_errors():  # before any training: a run of hours must not end on this
        common.output_folder(FLAGS.results_dir, "--results_dir")
    runs_roots = {t: os.path.join(FLAGS.runs_dir, f"table{t}{suffix}") for t in tables.TABLES}
    failed = run_all(table, runs_roots[table]) if FLAGS.train else []
    markdown = os.path.join(FLAGS.results_dir, f"table{table}{suffix}.md")
    with common.one_line_errors():  # a run folder that is not its row's, or a results.json with a NaN
        collected = tables.collect(table, runs_roots[table], FLAGS.datasets, FLAGS.scale)
        common.require_runs(FLAGS.train or any(r["status"] != "missing" for r in collected), runs_roots[table])
        written = figures(runs_roots, suffix)
    tables.write(table, collected, markdown, note())
    print(f"table: {markdown} (CSV beside it)")
    for path in written:
        print(f"figure: {path}")
    print(f"runs: tensorboard --logdir {FLAGS.runs_dir}")
    common.report_failures(failed)


if __name__ == "__main__":
    app.run(main)
