"""Tables 3 and 4: the runs behind each row, the paper's numbers, and ours beside them.

Each row is one model trained on each dataset with the settings of Section 5.2
(its flagfile is ``experiments/configs/table{3,4}/{key}_{dataset}.cfg``). A
multi-level row ("-i") is compared with its last-cycle model: the time it saved,
as measured, and in theory by block count (Section 4.2) and by counted FLOPs.
"""

import csv
import dataclasses
import functools
import os

from ml_resnet_tf.analysis import savings
from ml_resnet_tf.nets import costs, odenet, registry
from ml_resnet_tf.runs.records import RunError, load_results
from ml_resnet_tf.training import data
from ml_resnet_tf.training.config import TrainConfig

DATASETS = ("cifar10", "cifar100", "stl10")


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of Table 3 or 4. ``paper`` maps dataset -> (test error %, training minutes)."""

    label: str
    model: str
    start_blocks: tuple
    paper: dict

    @property
    def key(self):
        """``resnet50_i``: the name of its flagfiles and run folders."""
        return self.model + ("_i" if self.start_blocks else "")

    @property
    def blocks(self):
        final = odenet.format_blocks(registry.resolve(self.model).blocks_per_stage)
        return f"{odenet.format_blocks(self.start_blocks)} to {final}" if self.start_blocks else final

    @property
    def last_cycle_key(self):
        """The baseline a multi-level row saves time against: the same final model, trained as is."""
        return self.model if self.start_blocks else None


def _rows(prefix, name, numbers):
    shapes = [("14", ()), ("50", ()), ("50", (2, 2, 2)), ("32", ()), ("122", ()), ("122", (5, 5, 5))]
    return [Row(f"{name}-{depth}{'-i' if start else ''}", f"{prefix}{depth}", start, dict(zip(DATASETS, cells)))
            for (depth, start), cells in zip(shapes, numbers)]


TABLES = {
    3: _rows("resnet", "ResNet", [
        [(9.75, 38), (33.34, 38), (27.78, 33)],
        [(7.58, 114), (28.64, 115), (25.95, 114)],
        [(7.10, 67), (28.71, 68), (25.98, 68)],
        [(7.74, 76), (29.96, 74), (26.02, 71)],
        [(6.47, 266), (26.74, 266), (25.16, 266)],
        [(6.56, 154), (26.81, 154), (24.36, 162)],
    ]),
    4: _rows("wresnet", "WResNet", [
        [(7.38, 51), (27.92, 51), (24.58, 63)],
        [(5.87, 174), (24.49, 173), (23.82, 222)],
        [(5.95, 101), (24.92, 101), (22.82, 131)],
        [(6.29, 111), (25.32, 111), (23.51, 136)],
        [(5.38, 406), (23.11, 406), (22.00, 516)],
        [(5.46, 239), (23.04, 237), (22.65, 307)],
    ]),
}


def config_path(table, row, dataset):
    return os.path.join("experiments", "configs", f"table{table}", f"{row.key}_{dataset}.cfg")


def run_dir(runs_root, row, dataset):
    return os.path.join(runs_root, f"{row.key}_{dataset}")


@functools.cache
def _flops(model, blocks, dataset):
    spec = data.DATASETS[dataset]
    return costs.flops_per_image(registry.build_model(model, spec.num_classes, spec.image_shape,
                                                      blocks_per_stage=blocks))


def theoretical_savings(config):
    """(by blocks, by FLOPs) that ``config``'s multi-level run saves against its last-cycle model."""
    cycles = config.cycles()
    epochs = [c.end_epoch - c.start_epoch for c in cycles]
    return (costs.time_saved(epochs, [sum(c.blocks_per_stage) for c in cycles]),
            costs.time_saved(epochs, [_flops(config.model, c.blocks_per_stage, config.dataset) for c in cycles]))


def _config(row, dataset, results, scale):
    """The run's own flags where it exists, otherwise the paper's settings (TrainConfig's defaults)."""
    if results:
        flags = {k: v for k, v in results["flags"].items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
        return TrainConfig(**flags)
    return TrainConfig("-", dataset=dataset, model=row.model, start_blocks=row.start_blocks, scale=scale)


def _check_row(results, row, dataset, folder) -> None:
    """A run filed under ``row`` must be that row's run: its model, first blocks and dataset."""
    if not results:
        return
    flags = results["flags"]
    theirs = (flags.get("model"), tuple(flags.get("start_blocks") or ()), flags.get("dataset"))
    ours = (row.model, tuple(row.start_blocks or ()), dataset)
    if theirs != ours:
        raise RunError(f"{folder} holds a run of {theirs[0]} from blocks {theirs[1] or 'its own'} on {theirs[2]}, "
                       f"not {row.label} on {dataset}: move it away, or retrain that row")


def collect(table, runs_root, datasets=DATASETS, scale=1.0):
    """One record per (row, dataset): our numbers, the paper's, and the time saved."""
    records = []
    for row in TABLES[table]:
        for dataset in datasets:
            results = load_results(run_dir(runs_root, row, dataset))
            _check_row(results, row, dataset, run_dir(runs_root, row, dataset))
            flags = (results or {}).get("flags", {})
            paper_error, paper_minutes = row.paper[dataset]
            record = {"table": table, "model": row.label, "blocks": row.blocks, "dataset": dataset,
                      "status": results["status"] if results else "missing",
                      "error": None, "minutes": None, "startup_minutes": None, "paper_error": paper_error / 100,
                      "paper_minutes": paper_minutes, "run_dir": run_dir(runs_root, row, dataset),
                      "scale": flags.get("scale", scale), "train_subset": flags.get("train_subset", 0)}
            if results and results["status"] == "finished":
                final = results["final"]
                record.update(error=final["test_error"], minutes=final["train_seconds"] / 60,
                              startup_minutes=final.get("startup_seconds", 0.0) / 60)
            if row.start_blocks:
                baseline = next(r for r in TABLES[table] if r.key == row.last_cycle_key)
                base_results = load_results(run_dir(runs_root, baseline, dataset))
                record["paper_saved"] = 1 - paper_minutes / baseline.paper[dataset][1]
                record["saved_blocks"], record["saved_flops"] = theoretical_savings(
                    _config(row, dataset, results, scale))
                if record["minutes"] and base_results and base_results["status"] == "finished":
                    which = savings.clock(results, base_results)  # the CPU clock where a busy CPU could skew wall
                    ours, theirs = (savings.training_seconds(r, which)[0] for r in (results, base_results))
                    record["saved_measured"] = 1 - ours / theirs
            records.append(record)
    return records


COLUMNS = ["table", "model", "blocks", "dataset", "status", "error", "paper_error", "minutes", "paper_minutes",
           "startup_minutes", "saved_measured", "paper_saved", "saved_blocks", "saved_flops", "scale", "train_subset",
           "run_dir"]


def _percent(value):
    return "—" if value is None else f"{100 * value:.2f}%"


def _minutes(value):
    return "—" if value is None else (f"{value:.0f}m" if value >= 10 else f"{value:.1f}m")


def _cell(record, ours, paper):
    if record["status"] != "finished":
        return f"{record['status']} ({paper})"
    return f"{ours} ({paper})"


def render_markdown(table, records, note):
    """The paper's layout (rows: models; per dataset: error, time) with its numbers in parentheses,
    plus the multi-level rows' time saved: measured, and in theory by blocks and by FLOPs."""
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    titles = {name: data.DATASETS[name].title for name in datasets}
    header = ["Model", "# Blocks"] + [f"{titles[d]} {c}" for d in datasets
                                      for c in ("error", "time", "saved: measured", "saved: blocks / FLOPs")]
    lines = [f"# Table {table}: {'ResNets' if table == 3 else 'Wide ResNets'}, reproduced", "", note, "",
             "Cells read *ours (paper)*. Time is training time without evaluation or start-up (tracing each "
             "architecture's training step; the CSV has it). *Saved* is a multi-level "
             "model's time saved against its last-cycle model: measured (paper), and in theory from the "
             "cycle lengths by block count (Section 4.2) and by counted FLOPs.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_model = {}
    for r in records:
        by_model.setdefault((r["model"], r["blocks"]), {})[r["dataset"]] = r
    for (model, blocks), cells in by_model.items():
        row = [model, blocks]
        for d in datasets:
            r = cells[d]
            row += [_cell(r, _percent(r["error"]), _percent(r["paper_error"])),
                    _cell(r, _minutes(r["minutes"]), _minutes(r["paper_minutes"]))]
            if "saved_blocks" in r:
                row += [f"{_percent(r.get('saved_measured'))} ({_percent(r['paper_saved'])})",
                        f"{_percent(r['saved_blocks'])} / {_percent(r['saved_flops'])}"]
            else:
                row += ["", ""]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write(table, records, markdown_path, note):
    """Writes the Markdown table and, beside it, a CSV with one line per (model, dataset)."""
    os.makedirs(os.path.dirname(markdown_path) or ".", exist_ok=True)
    with open(markdown_path, "w") as f:
        f.write(render_markdown(table, records, note))
    with open(os.path.splitext(markdown_path)[0] + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
