"""A run folder's parts belong together: checkpoints, model.keras and results.json are checked, never trusted
(docs/reliability.md, "A run folder's parts"). Every case starts from a copy of the one-epoch ``trained_run``."""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from ml_resnet_tf import build_model
from ml_resnet_tf.runs import parts, records, schema
from ml_resnet_tf.runs.records import RunError
from ml_resnet_tf.training.config import TrainConfig
from ml_resnet_tf.training.trainer import train
from tests import helpers


@pytest.fixture
def finished(tmp_path, trained_run):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


@pytest.fixture
def run(finished):
    """``trained_run`` as a kill before its last save leaves it: running, its epoch checkpointed."""
    payload = results(finished)
    payload["status"] = "running"
    del payload["final"]
    write_results(finished, payload)
    (finished / "model.keras").unlink()
    return finished


def config(run, tiny_cifar10):
    """The flags ``trained_run`` was trained with: the same command resumes it."""
    return TrainConfig(str(run), data_dir=str(tiny_cifar10), model="resnet8", epochs=1, interpolate_at=(),
                       batch_size=50)


def results(run):
    return json.loads((run / "results.json").read_text())


def write_results(run, payload):
    (run / "results.json").write_text(json.dumps(payload))


def resume_error(run, tiny_cifar10):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != records.LOCK}
    with pytest.raises(RunError) as error:
        train(config(run, tiny_cifar10), verbose=0, log=lambda line: None)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != records.LOCK}
    assert after == before, "a refused resume touched the run"
    message = str(error.value)
    assert "\n" not in message and len(message) < 300
    return message


def test_every_part_carries_its_run_and_epoch(finished):
    run = finished
    found = results(run)
    assert found["schema_version"] == schema.SCHEMA_VERSION == 7
    assert len(found["run_id"]) == 32 and found["family"] == "resnet"
    for name, epoch in ((found["checkpoint"], 1), ("model.keras", 1)):
        model = records.load_model(str(run / name))
        assert model.provenance == {"run_id": found["run_id"], "epoch": epoch}


def test_a_checkpoint_of_another_architecture_is_refused(run, tiny_cifar10):
    other = build_model("resnet", blocks_per_stage=(2, 2, 2))
    other.save(run / "checkpoints" / "epoch_0001.keras")
    assert "is a blocks_per_stage 2-2-2 net, but the run's epoch 1 trained 1-1-1" in resume_error(run, tiny_cifar10)


def test_another_runs_checkpoint_is_refused(run, tiny_cifar10):
    path = run / "checkpoints" / "epoch_0001.keras"
    model = records.load_model(str(path))
    parts.stamp(model, "f" * 32, 1)  # the same net, saved by another run
    model.save(path)
    assert "belongs to another run (id ffffffff)" in resume_error(run, tiny_cifar10)


def test_a_checkpoint_of_another_epoch_is_refused(run, tiny_cifar10):
    path = run / "checkpoints" / "epoch_0001.keras"
    model = records.load_model(str(path))
    parts.stamp(model, results(run)["run_id"], 3)
    model.save(path)
    assert "holds the model after epoch 3, not after epoch 1" in resume_error(run, tiny_cifar10)


def test_a_checkpoint_path_is_never_followed_out_of_the_folder(run, tiny_cifar10, trained_run):
    payload = results(run)
    payload["checkpoint"] = str(trained_run / "model.keras")  # another run's final model, by absolute path
    write_results(run, payload)
    assert "names the checkpoint" in resume_error(run, tiny_cifar10)
    payload["checkpoint"] = "../elsewhere/epoch_0001.keras"
    write_results(run, payload)
    assert "this run's after epoch 1 is checkpoints/epoch_0001.keras" in resume_error(run, tiny_cifar10)


def test_an_analysis_refuses_a_model_keras_that_is_not_the_runs(finished):
    build_model("resnet", blocks_per_stage=(1, 2, 1)).save(finished / "model.keras")
    with pytest.raises(RunError, match="is a blocks_per_stage 1-2-1 net"):
        records.load_trained(str(finished))


def test_a_resume_checks_its_checkpoint_and_finishes(run, tiny_cifar10):
    assert train(config(run, tiny_cifar10), verbose=0, log=lambda line: None)["status"] == "finished"


def test_pruning_deletes_only_the_librarys_own_files(run):
    notes = run / "checkpoints" / "my-notes.txt"
    notes.write_text("mine")
    record = records.RunRecord(str(run), results(run))
    model = records.load_model(str(run / "checkpoints" / "epoch_0001.keras"))
    for epoch in (2, 3):
        record.add_epoch({**record.results["epochs"][0], "epoch": epoch}, model)
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch_0002.keras", "epoch_0003.keras", "my-notes.txt"]
    assert notes.read_text() == "mine"


@pytest.mark.parametrize("managed", parts.MANAGED)
def test_an_output_folder_inside_a_runs_managed_folders_is_refused(finished, managed):
    run = finished
    result = helpers.run_module("experiments.norms", f"--model_dir={run}", f"--output_dir={run / managed / 'out'}")
    assert result.returncode == 1
    (line,) = helpers.error_lines(result.stderr)
    assert f"{run / managed / 'out'} is inside a run's own folders" in line and len(line) < 300
    assert not (run / managed / "out").exists()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_number_is_refused_naming_the_file_and_key(finished, value):
    run = finished
    text = (run / "results.json").read_text()
    payload = json.loads(text)
    payload["final"]["test_error"] = "PLACEHOLDER"
    (run / "results.json").write_text(json.dumps(payload).replace('"PLACEHOLDER"', value))
    with pytest.raises(RunError, match=rf"results.json is not a run's results \(results.final.test_error is "
                                       rf"{'-?inf' if 'Inf' in value else 'nan'}, not a finite number"):
        records.load_results(str(run))


def test_a_results_json_with_a_nan_is_never_written(tmp_path):
    record = records.RunRecord.open(str(tmp_path / "run"), {"model": "resnet8"})
    record.results["epochs"].append({**helpers.results_payload([0.5])["epochs"][0], "train_loss": float("nan")})
    with pytest.raises(RunError, match=r"not writing results.json, whose results.epochs\[0\].train_loss is nan"):
        record.save()
    assert not (tmp_path / "run" / "results.json").exists()


def test_reproduce_refuses_a_run_filed_under_another_row(tmp_path):
    from ml_resnet_tf.paper import tables

    folder = tmp_path / "runs" / "resnet50_i_cifar10"
    folder.mkdir(parents=True)
    payload = helpers.results_payload([0.5], cycles=[(0, 1, (2, 2, 2))])
    payload["flags"].update(model="resnet50", start_blocks=[], dataset="cifar10")
    (folder / "results.json").write_text(json.dumps(payload))
    with pytest.raises(RunError, match="holds a run of resnet50 from blocks its own on cifar10, not ResNet-50-i"):
        tables.collect(3, str(tmp_path / "runs"), ["cifar10"])


def test_each_bad_model_file_is_named_for_what_it_is(tmp_path, monkeypatch):
    missing, folder, cut, foreign = (tmp_path / name for name in ("missing.keras", "folder.keras", "cut.keras",
                                                                  "foreign.keras"))
    folder.mkdir()
    build_model("resnet8").save(cut)
    cut.write_bytes(cut.read_bytes()[:1000])
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "NotOurs", "config": {}}))
    for path, words in ((missing, "is missing"), (folder, "is a folder, not a .keras file"),
                        (cut, "is corrupt or cut short"), (foreign, "is foreign: not a model this version")):
        with pytest.raises(RunError, match=words):
            records.load_model(str(path))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # the suite runs as root, which reads anything
    with pytest.raises(RunError, match="cannot be read .permission denied."):
        records.load_model(str(cut))


def test_an_unreadable_data_file_is_a_read_error_not_a_write_error(tiny_cifar10, monkeypatch):
    from ml_resnet_tf.training import data

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(np, "fromfile", denied)
    with pytest.raises(data.DataError, match=r"cannot read .*data_batch_1.bin \(Permission denied\): fix its "
                                             "permissions"):
        data.load("cifar10", str(tiny_cifar10))
