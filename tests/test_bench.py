"""``make bench``: the predicted saving's arithmetic, the binary end to end under TensorFlow, and the PyTorch twin."""

import json

import numpy as np
import pytest

from ml_resnet_tf import build_resnet
from ml_resnet_tf.analysis import savings
from ml_resnet_tf.bench import timing
from ml_resnet_tf.nets import costs, registry
from tests import helpers


def test_step_times_proportional_to_blocks_predict_the_block_count_bound():
    epochs, blocks = (60, 50, 50), (6, 12, 24)
    assert savings.predicted_saving(epochs, [0.01 * b for b in blocks], 500) == pytest.approx(
        costs.time_saved(epochs, blocks)) == pytest.approx(0.4375)
    # a fixed per-step overhead and the interpolations' costs both eat into it
    assert savings.predicted_saving(epochs, [0.01 * b + 0.05 for b in blocks], 500) < 0.4375 * 0.9
    assert savings.predicted_saving(epochs, [0.01 * b for b in blocks], 500, [30.0, 30.0]) == pytest.approx(
        1 - (60 * 0.06 + 50 * 0.12 + 50 * 0.24 + 0.12) / (160 * 0.24))


def finished_run(cycles, train_seconds, startup_seconds=0.0):
    """A results.json as experiments.train writes it."""
    return helpers.results_payload(cycles=cycles, final={"train_seconds": train_seconds,
                                                         "startup_seconds": startup_seconds})


MULTILEVEL = [(0, 2, (2, 2, 2)), (2, 3, (4, 4, 4)), (3, 4, (8, 8, 8))]  # --scale=0.025: 2/1/1 epochs
BASELINE = [(0, 2, (8, 8, 8)), (2, 3, (8, 8, 8)), (3, 4, (8, 8, 8))]


def test_measured_saving_leaves_start_up_out_and_knows_its_bound():
    measured = savings.measured_saving(finished_run(MULTILEVEL, 150.0, 15.0), finished_run(BASELINE, 300.0, 5.0))
    assert measured["blocks_bound"] == pytest.approx(0.5)  # (2*6 + 12 + 24) / (4*24)
    assert measured["saving"] == pytest.approx(0.5) and measured["fraction_of_blocks_bound"] == pytest.approx(1.0)
    assert measured["saving_with_startup"] == pytest.approx(1 - 165 / 305)
    with pytest.raises(ValueError, match="last architecture"):
        savings.measured_saving(finished_run(MULTILEVEL, 150.0), finished_run(BASELINE[:2], 300.0))
    # A swapped pair, or a run paired with itself, divided by a bound of zero before.
    with pytest.raises(ValueError, match="first run of a pair must be the multi-level one"):
        savings.measured_saving(finished_run(BASELINE, 300.0), finished_run(MULTILEVEL, 150.0))
    with pytest.raises(ValueError, match="first run of a pair must be the multi-level one"):
        savings.measured_saving(finished_run(BASELINE, 300.0), finished_run(BASELINE, 300.0))
    with pytest.raises(ValueError, match="second run of a pair must be a baseline"):
        savings.measured_saving(finished_run(MULTILEVEL, 150.0), finished_run(MULTILEVEL, 150.0))


def test_summary_reports_median_and_spread():
    assert timing.summary([3, 1, 2]) == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [1.0, 2.0, 3.0]}


def test_bench_binary_measures_pipeline_models_and_schedules(tmp_path):
    runs = []
    for name, cycles, seconds in (("i", MULTILEVEL, 140.0), ("base", BASELINE, 300.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(finished_run(cycles, seconds)))
        runs.append(str(tmp_path / name))
    result = helpers.run_module("experiments.bench", "--families=resnet", "--architectures=1-1-1,2-2-2",
                                "--batch_size=8", "--steps=2", "--repeats=2", f"--output={tmp_path / 'bench.json'}",
                                f"--measured_runs={','.join(runs)}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["backend"] == "tensorflow" and report["pipeline"]["median"] > 0
    first, second = report["architectures"]
    assert first["flops_per_image"] == costs.flops_per_image(build_resnet((1, 1, 1)))
    assert "interpolation_seconds" not in first  # nothing measured interpolates into it
    assert second["pipeline"]["median"] > 0 and second["interpolation_seconds"] > 0
    assert report["schedules"] == []  # no table's schedule starts at 1-1-1
    assert [t["target"] for t in report["targets"]] == [
        "pipeline delivers >= 2x the images/s ResNet 2-2-2 trains on",
        "measured saving of 1 real run pair(s), median, >= 95% of the block-count bound"]
    assert report["targets"][1]["value"] == pytest.approx((1 - 140 / 300) / 0.5)
    assert "| resnet | 2-2-2 |" in result.stdout and "wrote" in result.stdout


def test_bench_times_stochastic_depth_beside_the_expected_skip(tmp_path):
    (tmp_path / "bench.json").write_text('{"an": "earlier measurement"}')
    result = helpers.run_module("experiments.bench", "--families=lm_resnet", "--architectures=2-2-2",
                                "--stochastic_depth=0.5", "--batch_size=8", "--steps=2", "--repeats=1",
                                f"--output={tmp_path / 'bench.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    # A measurement is never replaced: the new one goes beside it.
    assert (tmp_path / "bench.json").read_text() == '{"an": "earlier measurement"}'
    assert f"wrote {tmp_path / 'bench-2.json'} ({tmp_path / 'bench.json'} holds an earlier measurement, kept)" \
        in result.stdout
    (row,) = json.loads((tmp_path / "bench-2.json").read_text())["architectures"]
    sd = row["stochastic_depth"]
    assert sd["expected_skipped"] == pytest.approx(0.5 * 7 / 12)  # mean of (l/6) * 0.5 over l = 1..6
    assert len(sd["step_seconds"]["values"]) == len(sd["plain_step_seconds"]["values"]) == 2  # steps x repeats
    assert sd["step_seconds"]["median"] > 0 and "expected fraction of blocks skipped 29.2%" in result.stdout


def _keras_leaves(model):
    """Conv, batch-norm and dense layers in the order they compute (ResNet blocks: bn1, conv1, bn2, conv2)."""
    for layer in model.layers:
        if hasattr(layer, "conv1"):
            yield from (layer.bn1, layer.conv1, layer.bn2, layer.conv2)
        elif layer.weights:
            yield layer


@pytest.mark.parametrize("family, blocks", [("resnet", (1, 1, 1)), ("resnet", (2, 3, 1)), ("wresnet", (1, 2, 1))])
def test_the_pytorch_twin_counts_the_same_parameters_and_computes_the_same_function(family, blocks):
    torch = pytest.importorskip("torch")
    from ml_resnet_tf.bench import torch_twin

    model = registry.build_model(family, step_size=0.5, blocks_per_stage=blocks)
    net = torch_twin.build(family, blocks, step_size=0.5)
    torch_twin.check_same_net(net, model)
    rng = np.random.default_rng(0)
    modules = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear))]
    with torch.no_grad():  # the Keras weights (with non-trivial statistics) into the twin, layout converted
        for layer, module in zip(_keras_leaves(model), modules, strict=True):
            if isinstance(module, torch.nn.BatchNorm2d):
                for variable in layer.weights:
                    variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
                gamma, beta, mean, var = (np.asarray(w) for w in layer.weights)
                for target, value in ((module.weight, gamma), (module.bias, beta), (module.running_mean, mean),
                                      (module.running_var, var)):
                    target.copy_(torch.from_numpy(value))
            elif isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(torch.from_numpy(np.asarray(layer.kernel).transpose(3, 2, 0, 1).copy()))
            else:
                module.weight.copy_(torch.from_numpy(np.asarray(layer.kernel).T.copy()))
                module.bias.copy_(torch.from_numpy(np.asarray(layer.bias)))
    images = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    theirs = net.eval()(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).detach().numpy()
    np.testing.assert_allclose(theirs, model.predict(images, verbose=0), rtol=1e-4, atol=1e-4)
    with pytest.raises(AssertionError, match="PyTorch twin counts"):
        torch_twin.check_same_net(torch_twin.build(family, (1, 1, 2)), model)


def test_bench_times_the_pytorch_twin_side_by_side(tmp_path):
    pytest.importorskip("torch")
    result = helpers.run_module("experiments.bench", "--families=resnet", "--architectures=1-1-1", "--batch_size=8",
                                "--steps=2", "--repeats=2", "--reference=torch", "--torch_modes=eager",
                                "--intra_op_threads=2", "--inter_op_threads=1", f"--output={tmp_path / 'bench.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    row = report["architectures"][0]
    assert list(row["torch"]) == ["eager"] and len(row["torch"]["eager"]["values"]) == 2
    assert row["ours_over_torch"]["eager"] == pytest.approx(row["memory"]["median"] / row["torch"]["eager"]["median"])
    assert report["threads"]["intra_op"] == 2 and report["threads"]["inter_op"] == 1
    assert report["torch_version"].startswith("2.")
    assert "| model | blocks | ours | torch eager | ours / eager |" in result.stdout
