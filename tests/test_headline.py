"""``make headline`` and ``make headline-curve`` on finished runs: seeds summarised as mean ± std, time on
the CPU clock, a saving above the bound flagged, the curve's verdict, and what they refuse."""

import functools
import json
import os
import types

import pytest

from ml_resnet_tf.nets import costs
from ml_resnet_tf.paper import headline
from tests import helpers

BASELINE = [0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.66, 0.7, 0.72]
MULTILEVEL = [0.3, 0.4, 0.5, 0.45, 0.55, 0.6, 0.58, 0.65, 0.7]
LADDER = [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
CHANGES = [(2, 3, 0.5, 0.3), (3, 6, 0.6, 0.4)]


def write_run(folder, accuracies, blocks, cpu, wall_factor=1.0, interpolations=(), cpu_clock=True):
    """A finished copy-rule run of three equal cycles; each epoch's CPU time from ``cpu``, its wall time
    ``wall_factor`` times that (a busy machine), each interpolation 0.5 s on both clocks."""
    length = len(accuracies) // 3
    cycles = [(i * length, (i + 1) * length, blocks[i]) for i in range(3)]
    payload = helpers.results_payload(accuracies, cycles=cycles, flags={"interpolation_rule": "copy"})
    for index, (epoch, value) in enumerate(zip(payload["epochs"], cpu)):
        epoch.update(train_seconds=wall_factor * value, cycle=index // length + 1,
                     train_cpu_seconds=value if cpu_clock else None, startup_cpu_seconds=0.0 if cpu_clock else None)
    payload["interpolations"] = [
        {"cycle": c, "epoch": e, "from_blocks": [1] * 3, "to_blocks": [2] * 3, "from_step_size": 1.0,
         "to_step_size": 0.5, "seconds": 0.5, "cpu_seconds": 0.5 if cpu_clock else None,
         "test_accuracy_before": b, "test_accuracy_after": a, "top1_agreement": 0.5, "relative_logit_change": 0.5}
        for c, e, b, a in interpolations]
    switches = 0.5 * len(interpolations)
    payload["final"].update(train_seconds=wall_factor * sum(cpu) + switches, startup_seconds=0.0,
                            train_cpu_seconds=sum(cpu) + switches if cpu_clock else None,
                            startup_cpu_seconds=0.0 if cpu_clock else None)
    os.makedirs(folder)
    (folder / "results.json").write_text(json.dumps(payload))


def write_pair(seed_dir, multilevel=MULTILEVEL, cpu=None, wall_factor=3.0, cpu_clock=True):
    """A seed's baseline (on a machine ``wall_factor`` times busier) and copy-rule run."""
    write_run(seed_dir / "baseline", BASELINE, LADDER[2:] * 3, [4.0] * 9, wall_factor, cpu_clock=cpu_clock)
    write_run(seed_dir / "multilevel-copy", multilevel, LADDER, cpu or [1.0] * 3 + [2.0] * 3 + [4.0] * 3,
              interpolations=CHANGES, cpu_clock=cpu_clock)


def headline_run(tmp_path, *extra):
    result = helpers.run_module("experiments.headline", "--notrain", "--train_subset=2000", "--rules=copy,zero",
                                f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'out'}", *extra)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_the_headline_summarises_seeds_on_the_cpu_clock(tmp_path):
    root = tmp_path / "runs" / "headline-subset2000-cycle3"
    write_pair(root / "seed0")
    write_pair(root / "seed1", MULTILEVEL[:-1] + [0.74])
    result = headline_run(tmp_path, "--seeds=2")
    bound = costs.time_saved([3, 3, 3], [3, 6, 12])
    # CPU clock: 22 s against 36 s (on the wall the busy baseline took 108 s, "saving" 80%, above the bound).
    # At 22 s the baseline had finished its fifth epoch (20 s): 60.00%. Block-epochs: 63 against 12 per epoch.
    # Gaps per seed -2 and +2 points at equal epochs (sample std 2.83), +10 and +14 at equal time.
    row = (f"| copy | 2 | 72.00% ± 2.83 | 72.00% ± 0.00 | +0.00 ± 2.83 | +12.00 ± 2.83 | +12.00 ± 2.83 | - | - | "
           f"{1 - 22 / 36:.1%} ± 0.0 | {bound:.1%} | {(1 - 22 / 36) / bound:.0%} | cpu | "
           "50.0% -> 30.0% -> 45.0% (2); 60.0% -> 40.0% -> 58.0% (2) |")
    assert row in result.stdout
    assert "copy: equal epochs: within 1 point met, equal time: >= 1 point ahead met, time saved >= 95% of the " \
           "block bound, never above MISSED" in result.stdout
    assert row in (tmp_path / "out" / "headline-subset2000-cycle3.md").read_text()
    saved = json.loads((tmp_path / "out" / "headline-subset2000-cycle3.json").read_text())
    assert [r["equal_epochs_gap"] for r in saved["rows"]] == pytest.approx([-0.02, 0.02])
    assert saved["summaries"][0]["equal_epochs_gap"] == pytest.approx({"mean": 0.0, "std": 0.04 / 2 ** 0.5, "n": 2})
    assert os.path.getsize(tmp_path / "out" / "headline-subset2000-cycle3.png") > 10_000


def test_a_saving_above_the_bound_is_a_measurement_error_and_old_runs_say_wall(tmp_path):
    write_pair(tmp_path / "runs" / "headline-subset2000-cycle3" / "seed0", cpu=[0.5] * 9)
    result = headline_run(tmp_path)
    assert "| measurement error: above the bound | " in result.stdout and "| 84.7%" not in result.stdout
    assert "time saved >= 95% of the block bound, never above MISSED" in result.stdout
    # Runs recorded before schema 7 have the wall clock only, and the table says which it read.
    write_pair(tmp_path / "runs" / "headline-subset2000-warmup0.5-cycle3" / "seed0", wall_factor=1.0,
               cpu_clock=False)
    assert "| wall | " in headline_run(tmp_path, "--restart_warmup=0.5").stdout


def test_the_budget_baseline_trains_its_own_schedule_at_the_matched_cost():
    # 1-1-1, 2-2-2, 4-4-4 for 3 epochs each: 63 block-epochs, 5.25 epochs of 4-4-4, rounded up.
    plan = headline.Plan("r", ("copy",), seeds=2, cycle_epochs=3, budget=True, multilevel_extra=("--bn_reestimate=20",))
    assert headline.budget_epochs(plan) == 6 and headline.budget_epochs(headline.Plan("r", cycle_epochs=16)) == 28
    runs = headline.runs(plan)
    assert [(r.arm, r.seed, os.path.relpath(r.folder, "r")) for r in runs] == [
        ("baseline", 0, "seed0/baseline"), ("copy", 0, "seed0/multilevel-copy"), ("budget", 0, "seed0/budget"),
        ("baseline", 1, "seed1/baseline"), ("copy", 1, "seed1/multilevel-copy"), ("budget", 1, "seed1/budget")]
    assert runs[2].flags[-2:] == ["--epochs=6", "--interpolate_at=2,4"] and "--seed=0" in runs[2].flags
    assert "--bn_reestimate=20" in runs[1].flags and not any("bn_re" in f for f in runs[0].flags + runs[2].flags)


def test_the_curve_plots_the_gap_against_the_cycle_length(tmp_path):
    for length, ours in ((1, [0.5, 0.45, 0.6]), (2, [0.3, 0.4, 0.45, 0.55, 0.6, 0.715])):
        theirs = [0.55, 0.6, 0.65] if length == 1 else [0.3, 0.4, 0.5, 0.55, 0.6, 0.72]
        seed = tmp_path / "runs" / f"headline-subset2000-cycle{length}" / "seed0"
        write_run(seed / "baseline", theirs, LADDER[2:] * 3, [4.0] * 3 * length)
        write_run(seed / "multilevel-copy", ours, LADDER, [1.0] * length + [2.0] * length + [4.0] * length,
                  interpolations=[(2, length, 0.5, 0.3), (3, 2 * length, 0.6, 0.4)])
    result = helpers.run_module("experiments.headline_curve", "--notrain", "--train_subset=2000", "--rules=copy",
                                "--cycle_lengths=1,2,4", f"--runs_dir={tmp_path / 'runs'}",
                                f"--results_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 1 | copy | 1 | 60.00% ± 0.00 | 65.00% ± 0.00 | -5.00 ± 0.00 |" in result.stdout
    assert "| 2 | copy | 1 | 71.50% ± 0.00 | 72.00% ± 0.00 | -0.50 ± 0.00 |" in result.stdout
    assert "| 4 |" not in result.stdout  # no runs there yet
    assert "copy: the mean gap is within 1 point from 2 epochs per cycle on" in result.stdout
    saved = json.loads((tmp_path / "out" / "headline-curve-subset2000.json").read_text())
    assert saved["within_one_point_from"] == {"copy": 2}
    assert os.path.getsize(tmp_path / "out" / "headline-curve-subset2000.png") > 10_000


def test_the_headline_without_its_runs_writes_nothing(tmp_path):
    result = helpers.run_module("experiments.headline", "--notrain", f"--runs_dir={tmp_path / 'runs'}",
                                f"--results_dir={tmp_path / 'out'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert helpers.error_lines(result.stderr) == [f"error: no runs under {tmp_path / 'runs' / 'headline-cycle3'}: "
                                                  "check --runs_dir, --scale and --train_subset (they name the "
                                                  "folder), or drop --notrain to train them"]
    assert os.listdir(tmp_path / "out") == []


def test_the_papers_protocol_is_section_5_2_and_its_flags_make_valid_runs():
    from absl import flags

    from ml_resnet_tf.training import config

    plan = headline.paper_plan("r", ("copy",), seeds=1, budget=True)
    assert plan.lengths == (60, 50, 50) and headline.budget_epochs(plan) == 90  # (60*6 + 50*12 + 50*24) / 24
    baseline, multilevel, budget = headline.runs(plan)
    assert baseline.title == "baseline 8-8-8, seed 0" and "--start_blocks=2,2,2" in multilevel.flags
    assert budget.flags[-2:] == ["--epochs=90", "--interpolate_at=30,60"]
    for run in (baseline, multilevel, budget):  # every run's command line is one experiments.train accepts
        values = flags.FlagValues()
        config.define_flags(types.SimpleNamespace(**{name: functools.partial(getattr(flags, name), flag_values=values)
                                                     for name in dir(flags) if name.startswith("DEFINE")}))
        values(["train", *run.flags, "--model_dir=x"])
        made = config.from_flags(values.flag_values_dict())
        assert made.model == "resnet50" and made.run_epochs in (160, 90)
    assert made.num_interpolations == 0 and config.from_flags(
        {**values.flag_values_dict(), "start_blocks": ["2", "2", "2"]}).num_interpolations == 2


def test_a_budget_split_between_cycles_names_its_runs_and_its_budget(tmp_path):
    plan = headline.Plan("r", ("zero",), cycles=(2, 3, 4), budget=True)
    assert plan.lengths == (2, 3, 4) and headline.budget_epochs(plan) == 6  # (2*3 + 3*6 + 4*12) / 12
    baseline, multilevel, budget = headline.runs(plan)
    assert baseline.flags[-2:] == ["--epochs=9", "--interpolate_at=2,5"] and "--epochs=9" in multilevel.flags
    root = tmp_path / "runs" / "headline-subset2000-split2-3-4" / "seed0"
    write_run(root / "baseline", BASELINE, LADDER[2:] * 3, [4.0] * 9)
    write_run(root / "multilevel-copy", MULTILEVEL, LADDER, [1.0] * 3 + [2.0] * 3 + [4.0] * 3, interpolations=CHANGES)
    assert "| copy | 1 | 70.00% ± 0.00 |" in headline_run(tmp_path, "--cycle_split=2,3,4").stdout
