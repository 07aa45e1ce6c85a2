"""results.json's schema: versioned, validated on every read and write, older versions upgraded."""

import json

import pytest

from ml_resnet_tf.analysis import savings
from ml_resnet_tf.runs import records, schema


def epoch(n, **changes):
    return {"epoch": n, "cycle": 1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
            "test_accuracy": 0.5, "test_error": 0.5, "learning_rate": 0.1, "train_seconds": 2.0,
            "startup_seconds": 0.0, "train_cpu_seconds": 3.5, "startup_cpu_seconds": 0.0,
            "residual_norms": {"stage1_block1": 1.0}, "block_scalars": {}, "ensemble": None, **changes}


def results(**changes):
    return {**schema.new({"model": "resnet8"}, "note"), "epochs": [epoch(1)], "checkpoint": "checkpoints/x", **changes}


def test_a_valid_payload_passes_and_new_runs_carry_the_version():
    schema.validate(results())
    assert schema.new({}, "")["schema_version"] == schema.SCHEMA_VERSION


@pytest.mark.parametrize("payload, message", [
    ([], "holds a list"),
    ({**results(), "epochs": "x"}, "results.epochs must be a list"),
    ({**results(), "epochs": [epoch(1, test_error="high")]}, r"results.epochs\[0\].test_error must be float"),
    ({**results(), "status": "done"}, "status is 'done'"),
    ({**results(), "status": "finished"}, "needs its 'final' record"),
    ({k: v for k, v in results().items() if k != "flags"}, "results lacks 'flags'"),
    ({**results(), "schema_version": 99}, "newer than this code's"),
    ({**results(), "epochs": [epoch(1, cycle=True)]}, r"cycle must be int"),
])
def test_invalid_payloads_name_the_field(payload, message):
    with pytest.raises(schema.SchemaError, match=message):
        schema.load(payload)


def test_version_1_files_are_upgraded(tmp_path):
    old = results()
    del old["schema_version"]
    for e in old["epochs"]:
        del e["block_scalars"], e["startup_seconds"]
    (tmp_path / "results.json").write_text(json.dumps(old))
    loaded = records.load_results(str(tmp_path))
    assert loaded["schema_version"] == schema.SCHEMA_VERSION and loaded["epochs"][0]["block_scalars"] == {}


def test_version_6_files_keep_their_wall_clock_and_gain_an_unknown_cpu_clock(tmp_path):
    old = {**results(), "schema_version": 6, "status": "finished",
           "final": {"test_error": 0.5, "test_accuracy": 0.5, "train_seconds": 2.0, "startup_seconds": 0.0}}
    del old["epochs"][0]["train_cpu_seconds"], old["epochs"][0]["startup_cpu_seconds"]
    old["cycles"] = [{"cycle": 1, "start_epoch": 0, "end_epoch": 1, "blocks_per_stage": [1, 1, 1], "step_size": 1.0,
                      "params": 1, "xla": False, "gains_at_start": {}, "train_seconds": 2.0, "startup_seconds": 0.0,
                      "test_error": 0.5}]
    (tmp_path / "results.json").write_text(json.dumps(old))
    loaded = records.load_results(str(tmp_path))
    assert loaded["epochs"][0]["train_cpu_seconds"] is None and loaded["final"]["train_cpu_seconds"] is None
    assert loaded["cycles"][0]["startup_cpu_seconds"] is None and loaded["epochs"][0]["train_seconds"] == 2.0
    assert savings.clock(loaded) == "wall" and savings.clock(results()) == "cpu"
    assert savings.accuracy_over_time(results(), "cpu") == [(3.5, 0.5)]
    on_gpu = {"from_epoch": 0, "backend": "jax", "keras": "3.15.1", "replicas": 1, "device": "gpu"}
    assert savings.clock({**results(), "sessions": [on_gpu]}) == "wall"  # the host's CPU time is not the GPU's


def test_a_foreign_results_file_is_one_clear_error(tmp_path):
    (tmp_path / "results.json").write_text("[]")
    with pytest.raises(records.RunError, match="is not a run's results .the file holds a list"):
        records.RunRecord.open(str(tmp_path), {"model": "resnet8"})
    with pytest.raises(records.RunError, match="is not a run's results"):  # never taken for "no run here"
        records.load_results(str(tmp_path))
    assert records.load_results(str(tmp_path / "nothing")) is None
