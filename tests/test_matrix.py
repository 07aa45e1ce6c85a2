"""Every precision policy against every option that changes the computation: a matrix, not a list.

Each cell trains one step per epoch on generated images through ``training.trainer.train`` (the
records, probes and checkpoints included) and must finish with only finite numbers in results.json;
a cell that cannot train would have to be refused up front with one line, and none is today
(docs/reliability.md, "Precisions meet options", gives the matrix and the faults it found).
"""

import math

import pytest

from ml_resnet_tf.training.config import TrainConfig
from ml_resnet_tf.training.trainer import train

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
GROWS = dict(model="resnet", epochs=2, interpolate_at=(1,))  # 1-1-1 -> 2-2-2: one interpolation, one restart
CELLS = {
    # A baseline with one restart: the momentum is zeroed in place (under mixed_float16, in the loss-scale
    # optimizer's inner one).
    **{family: dict(model=family, epochs=2, interpolate_at=(1,))
       for family in ("resnet", "wresnet", "lm_resnet", "hamiltonian", "midpoint", "leapfrog")},
    **{f"{family}, memory-efficient": dict(model=family, memory_efficient=True)
       for family in ("hamiltonian", "midpoint", "leapfrog")},
    "stochastic depth": dict(model="resnet", stochastic_depth=0.5),
    "memory-efficient, stochastic depth": dict(model="hamiltonian", memory_efficient=True, stochastic_depth=0.5),
    "copy rule, restart warm-up": dict(GROWS, restart_warmup=0.5),
    "linear rule, BN re-estimation": dict(GROWS, interpolation_rule="linear", bn_reestimate=1),
    "zero rule": dict(GROWS, interpolation_rule="zero"),
    "XLA": dict(model="resnet", jit_compile="true"),
    "mirrored strategy": dict(model="resnet", strategy="mirrored"),
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
    options = {"start_blocks": (1, 1, 1), "epochs": 1, "interpolate_at": (), **CELLS[cell]}
    config = TrainConfig(str(tmp_path / "run"), data_dir=str(tiny_cifar10), batch_size=50, train_subset=50,
                         mixed_precision=precision, **options)
    results = train(config, verbose=0, log=lambda line: None)
    assert results["status"] == "finished" and finite(results) == []
    grows = config.num_interpolations > 0
    assert len(results["epochs"]) == config.epochs and len(results["interpolations"]) == int(grows)
    assert len(results["cycles"]) == 1 + len(config.interpolate_at)
    assert all(0 < e["ensemble"]["mean_depth"] <= e["ensemble"]["num_blocks"] for e in results["epochs"])
