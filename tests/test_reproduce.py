"""The Table 3 harness end to end, at a tiny scale: runs, table, figures, and a rerun that trains nothing."""

import csv
import os

import pytest

from tests import helpers

pytestmark = pytest.mark.slow

ROWS = ["ResNet-14", "ResNet-50", "ResNet-50-i", "ResNet-32", "ResNet-122", "ResNet-122-i"]


def reproduce(tmp_path, data_dir):
    return helpers.run_module(
        "experiments.reproduce", "--table=3", "--datasets=cifar10", f"--data_dir={data_dir}", "--scale=0.02",
        "--train_subset=100", f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'results'}",
        timeout=1200)


def test_table3_harness(tmp_path, tiny_cifar10):
    first = reproduce(tmp_path, tiny_cifar10)
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results"
    assert sorted(os.listdir(results)) == ["figure11-scale0.02-subset100.png", "figure6-scale0.02-subset100.png",
                                           "table3-scale0.02-subset100.csv", "table3-scale0.02-subset100.md"]

    markdown = (results / "table3-scale0.02-subset100.md").read_text()
    assert "Scaled-down run" in markdown
    header, rule, *lines = [row for row in markdown.splitlines() if row.startswith("|")]
    assert header.split(" | ")[:3] == ["| Model", "# Blocks", "CIFAR-10 error"]
    assert "CIFAR-10 saved: blocks / FLOPs" in header and "CIFAR-100" not in header
    assert [line.split(" | ")[0][2:] for line in lines] == ROWS
    resnet50_i = lines[2].split(" | ")
    assert resnet50_i[1] == "2-2-2 to 8-8-8" and resnet50_i[2].endswith("(7.10%)") and resnet50_i[3].endswith("(67m)")
    assert resnet50_i[4].endswith("(41.23%)")  # the paper's own saving: 1 - 67/114
    # Scaled to 3 epochs of one cycle each: 1 - (2 + 4 + 8) / (3 * 8) by blocks.
    assert resnet50_i[5].startswith("41.67% / ")

    with open(results / "table3-scale0.02-subset100.csv") as f:
        records = list(csv.DictReader(f))
    assert [r["model"] for r in records] == ROWS and {r["status"] for r in records} == {"finished"}
    assert all(0 <= float(r["error"]) <= 1 and float(r["scale"]) == 0.02 for r in records)
    assert float(records[2]["saved_flops"]) > 0.35 and records[2]["saved_measured"]

    runs = tmp_path / "runs" / "table3-scale0.02-subset100"
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("*")}
    again = reproduce(tmp_path, tiny_cifar10)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished, skipped") == 6
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("*")} == stamps
