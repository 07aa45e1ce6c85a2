"""``make bench``: the predicted saving's arithmetic, and the binary end to end under TensorFlow."""

import json

import pytest

from ml_resnet_tf import benchmark, build_resnet, costs
from tests import helpers


def test_step_times_proportional_to_blocks_predict_the_block_count_bound():
    epochs, blocks = (60, 50, 50), (6, 12, 24)
    assert benchmark.predicted_saving(epochs, [0.01 * b for b in blocks], 500) == pytest.approx(
        costs.time_saved(epochs, blocks)) == pytest.approx(0.4375)
    # a fixed per-step overhead and the interpolations' costs both eat into it
    assert benchmark.predicted_saving(epochs, [0.01 * b + 0.05 for b in blocks], 500) < 0.4375 * 0.9
    assert benchmark.predicted_saving(epochs, [0.01 * b for b in blocks], 500, [30.0, 30.0]) == pytest.approx(
        1 - (60 * 0.06 + 50 * 0.12 + 50 * 0.24 + 0.12) / (160 * 0.24))


def test_summary_reports_median_and_spread():
    assert benchmark.summary([3, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [1.0, 2.0, 3.0]}


def test_bench_binary_measures_pipeline_models_and_schedules(tmp_path):
    result = helpers.run_module("experiments.bench", "--families=resnet", "--architectures=1-1-1,2-2-2",
                                "--batch_size=8", "--steps=2", "--repeats=2", f"--output={tmp_path / 'bench.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["backend"] == "tensorflow" and report["pipeline"]["median"] > 0
    first, second = report["architectures"]
    assert first["flops_per_image"] == costs.flops_per_image(build_resnet((1, 1, 1)))
    assert "interpolation_seconds" not in first  # nothing measured interpolates into it
    assert second["pipeline"]["median"] > 0 and second["interpolation_seconds"] > 0
    assert report["schedules"] == []  # no table's schedule starts at 1-1-1
    assert [t["target"] for t in report["targets"]] == [
        "pipeline delivers >= 2x the images/s ResNet 2-2-2 trains on"]
    assert "| resnet | 2-2-2 |" in result.stdout and "wrote" in result.stdout
