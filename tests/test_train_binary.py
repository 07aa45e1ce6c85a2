"""``python -m experiments.train`` as a user runs it: bad input gives one line, no traceback."""

import json

from ml_resnet_tf.runs.records import load_model
from tests import helpers


def run_train(*args):
    return helpers.run_module("experiments.train", *args, timeout=300)


def test_missing_dataset_offline(tmp_path):
    result = run_train(f"--model_dir={tmp_path / 'new'}", f"--data_dir={tmp_path}", "--nodownload")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = helpers.error_lines(result.stderr)
    assert line.startswith("error: CIFAR-10: not prepared") and "--data_dir=DIR with cifar-10-batches-bin/" in line
    assert not (tmp_path / "new").exists()


def test_other_flags_on_an_existing_run(tmp_path, tiny_cifar10):
    common = [f"--data_dir={tiny_cifar10}", "--model=resnet8", "--interpolate_at=", "--batch_size=100"]
    folder = tmp_path / "run"
    first = run_train(f"--model_dir={folder}", "--epochs=1", *common)
    assert first.returncode == 0, first.stderr
    assert "finished: test error" in first.stdout and "cycle 1/1: 1-1-1 blocks" in first.stdout
    # Not a terminal: one plain line per epoch instead of the progress bar's escape-coded updates.
    assert "\x1b[" not in first.stdout and "━" not in first.stdout and "\r" not in first.stdout
    assert sum(line.startswith("2/2 - ") for line in first.stdout.splitlines()) == 1, first.stdout
    results = (folder / "results.json").read_bytes()
    again = run_train(f"--model_dir={folder}", "--epochs=2", *common)
    assert again.returncode == 1
    (line,) = helpers.error_lines(again.stderr)
    assert line == f"error: {folder} holds a run with --epochs=1, not 2: pass its flags to resume it, " \
                   "or choose a new --model_dir"
    assert (folder / "results.json").read_bytes() == results


def test_performance_options_train_and_are_recorded(tmp_path, tiny_cifar10):
    """XLA, bfloat16 and two steps per call, in a fresh process: op determinism, once enabled by
    another run in the same process, would silently turn XLA off."""
    result = run_train(f"--model_dir={tmp_path / 'run'}", f"--data_dir={tiny_cifar10}", "--model=resnet14",
                       "--start_blocks=1,1,1", "--epochs=2", "--interpolate_at=1", "--batch_size=50",
                       "--jit_compile=true", "--steps_per_execution=2", "--mixed_precision=mixed_bfloat16")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {k: results["flags"][k] for k in ("jit_compile", "steps_per_execution", "mixed_precision")} == {
        "jit_compile": "true", "steps_per_execution": 2, "mixed_precision": "mixed_bfloat16"}
    assert [c["xla"] for c in results["cycles"]] == [True, True]
    assert all(e["train_loss"] == e["train_loss"] for e in results["epochs"])  # no NaN
    model = load_model(tmp_path / "run" / "model.keras")
    assert model.get_layer("stage1_block1").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("classifier").compute_dtype == "float32"  # logits and loss in full precision


def test_compare_tabulates_runs_and_refuses_folders_without_one(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(helpers.results_payload([0.4, 0.6], cycles=[(0, 2, (1, 1, 1))])))
    grown = helpers.results_payload([0.4, 0.6, 0.3, 0.7], cycles=[(0, 2, (1, 1, 1)), (2, 4, (2, 2, 2))],
                                    flags={"interpolation_rule": "zero", "restart_warmup": 0.5})
    grown["interpolations"] = [{"cycle": 2, "epoch": 2, "from_blocks": [1] * 3, "to_blocks": [2] * 3,
                                "from_step_size": 1.0, "to_step_size": 1.0, "seconds": 0.1, "test_accuracy_before": 0.6,
                                "test_accuracy_after": 0.6, "top1_agreement": 1.0, "relative_logit_change": 0.0}]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps(grown))
    result = helpers.run_module("experiments.compare", f"--model_dirs={folder},{tmp_path / 'b'}")
    assert result.returncode == 0, result.stderr
    assert "| a | ? | 1-1-1 | 1 |" in result.stdout and "| 40.00 | 0.0 | - | - | finished |" in result.stdout
    # The restart options, and the interpolation: 60% before and after, 30% after one epoch, back at 60% two
    # epochs later (epoch 4).
    # Minutes from the epochs (4 x 1 s) and the interpolation (0.1 s), on the wall clock: these runs predate it.
    assert "| b | ? | 1-1-1 → 2-2-2 | 1 |  | 30.00 | 0.1 | zero, warm-up 0.5 | 60.0% -> 60.0% -> 30.0% (2) | " \
           "finished |" \
        in result.stdout and "| train minutes (wall clock) |" in result.stdout
    bad = helpers.run_module("experiments.compare", f"--model_dirs={folder},{tmp_path / 'none'}")
    assert bad.returncode == 1 and helpers.error_lines(bad.stderr) == [
        f"error: --model_dirs: {tmp_path / 'none'}: no run with a finished epoch; pass folders written by "
        "experiments.train"]


def test_a_flag_from_a_flagfile_that_cannot_act_is_named_in_one_warning(tmp_path, tiny_cifar10):
    flagfile = tmp_path / "shared.cfg"  # settings a baseline shares with its multi-level run
    flagfile.write_text("--bn_reestimate=2\n--interpolation_rule=zero\n")
    result = helpers.run_module("experiments.train", f"--flagfile={flagfile}", f"--model_dir={tmp_path / 'run'}",
                                f"--data_dir={tiny_cifar10}", "--model=resnet8", "--epochs=1", "--interpolate_at=",
                                "--batch_size=100")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line for line in helpers.error_lines(result.stderr) if line.startswith("warning:")] == [
        "warning: --interpolation_rule=zero (from a flagfile) has no effect on this run: the run never interpolates "
        "(no --start_blocks or --interpolations)",
        "warning: --bn_reestimate=2 (from a flagfile) has no effect on this run: the run never interpolates "
        "(no --start_blocks or --interpolations)"]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "finished"
