"""Every precision policy against every option that changes the computation: a matrix, not a list.

Each cell trains two epochs of two steps on generated images through ``training.trainer.train`` (the
records, probes and checkpoints included) and must finish with only finite numbers in results.json;
a cell that cannot train would have to be refused up front with one line, and none is today
(docs/reliability.md, "Precisions meet options", gives the matrix and the faults it found).
"""

import math

import pytest

from ml_resnet_tf.training import cycles
from ml_resnet_tf.training.config import TrainConfig
from ml_resnet_tf.training.trainer import train

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
RESTART = dict(epochs=2, interpolate_at=(1,))  # a baseline with one restart: momentum zeroed in place
GROWS = dict(epochs=2, interpolate_at=(1,), start_blocks=(1, 1, 1))  # 1-1-1 -> 2-2-2, one interpolation
# A covering design: every option meets every precision, every family is a cell, and options that can
# meet do (the fault issue 25 found needed three at once). The id names every option of the cell.
CELLS = {
    "resnet: zero rule": dict(GROWS, model="resnet", interpolation_rule="zero"),
    "resnet: XLA, a restart": dict(RESTART, model="resnet8", jit_compile="true"),
    "wresnet: stochastic depth, a restart": dict(RESTART, model="wresnet8", stochastic_depth=0.5),
    "lm_resnet: copy rule, restart warm-up, mirrored strategy": dict(GROWS, model="lm_resnet",
                                                                     restart_warmup=0.5, strategy="mirrored"),
    "hamiltonian: memory-efficient, stochastic depth, linear rule, BN re-estimation": dict(
        GROWS, model="hamiltonian", memory_efficient=True, stochastic_depth=0.5, interpolation_rule="linear",
        bn_reestimate=2),
    "midpoint: memory-efficient, zero rule": dict(GROWS, model="midpoint", memory_efficient=True,
                                                  interpolation_rule="zero"),
    "leapfrog: memory-efficient, a restart": dict(RESTART, model="leapfrog8", memory_efficient=True),
}


def finite(value, where="results"):
    """Every number in a JSON-like value, with where it is, that is not finite."""
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in finite(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [bad for index, item in enumerate(value) for bad in finite(item, f"{where}[{index}]")]
    return [where] if isinstance(value, float) and not math.isfinite(value) else []


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_trains_and_records_only_finite_numbers(tmp_path, tiny_cifar10, precision, cell):
    options = CELLS[cell]
    config = TrainConfig(str(tmp_path / "run"), data_dir=str(tiny_cifar10), batch_size=50, train_subset=100,
                         mixed_precision=precision, **options)
    results = train(config, verbose=0, log=lambda line: None)
    assert results["status"] == "finished" and finite(results) == []
    assert len(results["epochs"]) == 2 and len(results["cycles"]) == 2
    assert all(0 < e["ensemble"]["mean_depth"] <= e["ensemble"]["num_blocks"] for e in results["epochs"])
    assert {key: results["flags"][key] for key in options} == {k: list(v) if isinstance(v, tuple) else v
                                                               for k, v in options.items()}
    assert [c["xla"] for c in results["cycles"]] == [config.jit_compile == "true"] * 2
    steps = [c["step_size"] for c in results["cycles"]]
    if config.num_interpolations:
        (change,) = results["interpolations"]
        # The zero rule keeps h and, for the ResNet, the function itself; the others halve h (Eq. 2).
        assert steps == ([1.0, 1.0] if config.interpolation_rule == "zero" else [1.0, 0.5])
        if config.model == "resnet":
            assert change["top1_agreement"] == 1.0 and change["test_accuracy_after"] == change["test_accuracy_before"]
            assert change["relative_logit_change"] < (1e-5 if precision == "float32" else 1e-2)
    else:
        assert steps == [1.0, 1.0] and results["interpolations"] == []
    if config.restart_warmup:
        assert cycles.schedule(config, 2).warmup_steps == 1  # half an epoch of two steps
