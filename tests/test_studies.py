"""The analysis binaries and the figure harness as users run them, and the learning-rate study's options."""

import json
import math
import os
import shutil

import pytest

from ml_resnet_tf.paper import studies
from ml_resnet_tf.runs.records import RunError, RunRecord
from ml_resnet_tf.training.config import DEFAULTS, TrainConfig
from ml_resnet_tf.training.cycles import schedule
from tests import helpers


def test_figure_runs_follow_the_paper():
    assert len(studies.figure_runs("9", ["cifar10"])) == len(studies.ETA_MAX) * len(studies.ETA_MIN) == 15
    assert len(studies.figure_runs("10", ["cifar10", "cifar100", "stl10"], seeds=10)) == 60
    assert studies.figure_runs("9", ["stl10"]) == []  # Fig. 9 is drawn for CIFAR-10 only
    fig3 = studies.figure_runs("3", ["cifar10"])
    assert [r.flags[:2] for r in fig3][-1] == ("--model=resnet110", "--step_size=1")
    assert studies.figure_runs("lesion", ["cifar10"]) == studies.figure_runs("4", ["cifar10"])  # one shared run
    assert [r.flags[:2] for r in studies.figure_runs("7", ["cifar100"])] == [
        ("--model=resnet32", "--step_size=1"), ("--model=resnet62", "--step_size=0.5"),
        ("--model=resnet122", "--step_size=0.25")]
    for figure in studies.FIGURES:  # every flagfile a run names exists
        for run in studies.figure_runs(figure, ["cifar10"], seeds=1):
            assert os.path.isfile(os.path.join(helpers.ROOT, run.command_flags()[0].split("=", 1)[1]))


def test_without_lr_restart_one_cosine_spans_all_cycles():
    restart = schedule(TrainConfig("unused", model="resnet50", start_blocks=(2, 2, 2)), 10)
    once = schedule(TrainConfig("unused", model="resnet50", start_blocks=(2, 2, 2), lr_restart=False), 10)
    assert float(restart(600)) == pytest.approx(0.5)  # epoch 60: the second cycle restarts
    eq9 = 0.001 + 0.5 * (0.5 - 0.001) * (1 + math.cos(math.pi * 600 / 1600))  # Eq. 9 with T = all 160 epochs
    assert float(once(600)) == pytest.approx(eq9, rel=1e-6)


def test_a_run_recorded_before_a_flag_existed_still_resumes(tmp_path):
    flags = {**DEFAULTS, "model_dir": str(tmp_path / "old")}
    older = {k: v for k, v in flags.items() if k != "lr_restart"}
    os.makedirs(tmp_path / "old")
    with open(tmp_path / "old" / "results.json", "w") as f:
        json.dump({**helpers.results_payload(status="running", flags=older), "epochs": []}, f)
    assert RunRecord.open(str(tmp_path / "old"), flags, DEFAULTS).results["flags"] == json.loads(json.dumps(older))
    with pytest.raises(RunError, match="--lr_restart=True, not False"):
        RunRecord.open(str(tmp_path / "old"), {**flags, "lr_restart": False}, DEFAULTS)


def test_norms_binary_writes_json_and_figures(trained_run, tmp_path):
    result = helpers.run_module("experiments.norms", f"--model_dir={trained_run}", f"--output_dir={tmp_path}",
                                "--num_images=40")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["figure3.png", "figure4.png", "figure7.png", "norms.json"]
    (entry,) = json.loads((tmp_path / "norms.json").read_text())
    assert (entry["model"], entry["num_blocks"], entry["num_images"], entry["dataset"]) == ("resnet8", 3, 40, "cifar10")
    assert entry["gamma"] == pytest.approx(sum(b["residual_norm"] for b in entry["blocks"]) / 3)
    assert all(os.path.getsize(tmp_path / name) > 10_000 for name in os.listdir(tmp_path) if name.endswith(".png"))


def test_lesion_binary_writes_json_and_figure_beside_the_run(trained_run):
    result = helpers.run_module("experiments.lesion", f"--model_dir={trained_run}", "--num_images=40", "--draws=2")
    assert result.returncode == 0, result.stderr[-2000:]
    study = json.loads((trained_run / "analysis" / "lesion.json").read_text())
    assert [r["downsampling"] for r in study["single_block"]] == [False, True, True]
    assert [r["removed"] for r in study["random_deletions"]] == [1]  # only stage 1's block keeps its shape
    assert max(check["relative_error"] for check in study["eq8"]) < 1e-5
    assert os.path.getsize(trained_run / "analysis" / "lesion.png") > 10_000
    assert os.path.isfile(trained_run / "results.json")  # the run's own results are untouched


def test_ensemble_binary_writes_json_and_figures_beside_the_run(trained_run):
    result = helpers.run_module("experiments.ensemble", f"--model_dir={trained_run}", "--num_images=40",
                                "--path_samples=6", "--lesion_draws=1", "--batch_size=16")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = trained_run / "analysis"
    study = json.loads((folder / "ensemble.json").read_text())
    (entry,) = study["runs"]
    assert study["settings"]["path_samples"] == 6 and entry["num_images"] == 40
    assert [r["k"] for r in entry["path_gradient"]["per_length"]] == [0, 1, 2, 3]
    assert sum(entry["depth"]["distribution"]) == pytest.approx(1.0)
    assert [row["epoch"] for row in entry["history"]] == [0, 1] and len(entry["distributions"]) == 3
    assert [r["removed"] for r in entry["lesion"]["random_deletions"]] == [1]
    for name in ("depth", "distribution", "gains", "gradient", "lesion"):
        assert os.path.getsize(folder / f"ensemble-{name}.png") > 10_000
    table = (folder / "ensemble.md").read_text().splitlines()
    assert table[2].startswith("| resnet8: 1-1-1 | 3: ") and table[2] in result.stdout
    assert table[-1].startswith("| resnet8: 1-1-1 | 1 | 3 | 1 | ")
    result = helpers.run_module("experiments.ensemble", f"--model_dir={trained_run}", "--ks=2,9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert helpers.error_lines(result.stderr) == ["error: --ks: path lengths must lie in 0 ... 3, got [2, 9]"]


def fake_run(folder, accuracies):
    """A finished run's results.json with the given per-epoch test accuracies."""
    os.makedirs(folder)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(helpers.results_payload(accuracies), f)


def test_figure_harness_draws_the_learning_rate_studies_from_finished_runs(tmp_path):
    root = tmp_path / "runs" / "figures-scale0.01"
    for a in studies.ETA_MAX[:3]:
        fake_run(root / studies.grid_run(a, 0.001, "cifar10").key, [0.3, 0.5 + a / 10])
    for seed in range(3):
        fake_run(root / studies.reset_run(True, seed, "cifar10").key, [0.3, 0.6 + seed / 100])
        fake_run(root / studies.reset_run(False, seed, "cifar10").key, [0.3, 0.5 + seed / 100])
    result = helpers.run_module("experiments.figures", "--notrain", "--figures=9,10", "--datasets=cifar10",
                                "--seeds=3", "--scale=0.01", f"--runs_dir={tmp_path / 'runs'}",
                                f"--results_dir={tmp_path / 'results'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "results")) == ["figure10-scale0.01.png", "figure9-scale0.01.png"]
    assert studies.lr_grid(root, ["cifar10"])[0][1][0.001] == [(0.05, 0.505), (0.1, 0.51), (0.2, 0.52)]


def test_figure_harness_runs_the_ensemble_analysis_on_its_two_runs(tmp_path, trained_run):
    root = tmp_path / "runs" / "figures-scale0.01"
    for run in studies.figure_runs("ensemble", ["cifar10"]):
        shutil.copytree(trained_run, root / run.key, ignore=shutil.ignore_patterns("analysis"))
    result = helpers.run_module("experiments.figures", "--notrain", "--figures=ensemble", "--datasets=cifar10",
                                "--scale=0.01", "--num_images=20", "--path_samples=2", "--draws=1",
                                f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'results'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "results")) == sorted(
        ["ensemble-scale0.01.json", "ensemble-scale0.01.md"] + [f"ensemble-{n}-scale0.01.png"
                                       for n in ("depth", "distribution", "gains", "gradient", "lesion")])
    study = json.loads((tmp_path / "results" / "ensemble-scale0.01.json").read_text())
    assert [e["label"] for e in study["runs"]] == ["resnet50_i_cifar10: 1-1-1", "resnet50_cifar10: 1-1-1"]


def test_notrain_with_a_wrong_runs_dir_replaces_no_table(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table3.md").write_text("the user's table")
    result = helpers.run_module("experiments.reproduce", "--notrain", f"--runs_dir={tmp_path / 'typo'}",
                                f"--results_dir={tmp_path / 'results'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert helpers.error_lines(result.stderr)[0].startswith(f"error: no runs under {tmp_path / 'typo'}/table3")
    assert os.listdir(tmp_path / "results") == ["table3.md"]
    assert (tmp_path / "results" / "table3.md").read_text() == "the user's table"


def test_interpolate_binary_measures_every_rule_before_training(trained_run, tmp_path):
    result = helpers.run_module("experiments.interpolate", f"--model_dir={trained_run}", f"--output_dir={tmp_path}",
                                "--bn_batches=2", "--num_images=60")
    assert result.returncode == 0, result.stderr[-2000:]
    study = json.loads((tmp_path / "interpolate.json").read_text())
    assert [r["rule"] for r in study["rules"]] == ["copy", "linear", "zero"]
    assert study["num_images"] == 60 and study["bn_images"] == 200  # 2 batches of CIFAR's 100
    zero = study["rules"][2]
    # The zero rule is exact (resnet): the grown net agrees with the trained one on every image.
    assert zero["accuracy_after"] == study["accuracy"] and zero["top1_agreement"] == 1.0 and zero["step_size"] == 1.0
    assert study["rules"][0]["step_size"] == 0.5 and study["rules"][0]["blocks_per_stage"] == [2, 2, 2]
    assert "| zero | 2-2-2 | 1 |" in result.stdout
