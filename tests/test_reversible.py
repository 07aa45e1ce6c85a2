"""Reversible families: parameter counts, the schemes, the exact inverse, memory-efficient gradients.

The contract every family meets (build, train, save, interpolate, lesions, refinement) is in
test_families.py, which picks these families up by itself.
"""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from ml_resnet_tf import interpolate
from ml_resnet_tf.nets import branches, memory, odenet, registry, reversible
from ml_resnet_tf.training.config import ConfigError, TrainConfig
from tests import helpers

REVERSIBLE = [f.name for f in registry.FAMILIES.values() if f.reversible]
SHAPE = (16, 16, 3)

# CIFAR-10 / CIFAR-100. Hamiltonian: the notes' table (§1.6) exactly. midpoint62 / leapfrog62: our
# layouts (families/midpoint.py, leapfrog.py), 371,520 convolution parameters each.
PARAMS = {
    "hamiltonian38": (191_050, 201_220),
    "hamiltonian74": (432_010, 442_180),
    "hamiltonian110": (811_914, 823_524),
    "hamiltonian218": (1_690_890, 1_702_500),
    "midpoint62": (377_802, 387_972),
    "leapfrog62": (374_666, 379_796),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_presets_have_the_pinned_parameter_counts(name):
    for classes, expected in zip((10, 100), PARAMS[name]):
        assert odenet.trainable_params(registry.build_model(name, classes)) == expected


@pytest.mark.slow
def test_hamiltonian1202_has_the_notes_parameter_count():
    assert odenet.trainable_params(registry.build_model("hamiltonian1202", 10)) == 9_699_338


def test_tied_transpose_is_the_adjoint_even_for_a_non_square_kernel():
    conv = branches.TiedConv(4)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 7, 6)).astype("float32")
    conv.build(x.shape)
    kx = ops.convert_to_numpy(conv(x))
    y = rng.normal(size=kx.shape).astype("float32")
    kty = ops.convert_to_numpy(conv.adjoint(y))
    assert kty.shape == x.shape
    np.testing.assert_allclose(np.sum(kx * y), np.sum(x * kty), rtol=1e-4)


def _numpy(x):
    return ops.convert_to_numpy(x)


def test_steps_are_the_published_schemes():
    rng = np.random.default_rng(0)
    h = 0.3
    ham = registry.FAMILIES["hamiltonian"].block(8, step_size=h, index=2)
    x = rng.normal(size=(2, 4, 4, 8)).astype("float32")
    out = _numpy(ham(x, training=False))
    y, z = x[..., :4], x[..., 4:]
    y1 = y + h * _numpy(ham.f(z, training=False))
    z1 = z - h * _numpy(ham.g(y1, training=False))
    np.testing.assert_allclose(out, np.concatenate([y1, z1], -1), rtol=1e-5, atol=1e-5)

    pair = tuple(rng.normal(size=(2, 4, 4, 8)).astype("float32") for _ in range(2))
    mid = registry.FAMILIES["midpoint"].block(8, step_size=h, index=2)
    new, carried = (_numpy(t) for t in mid(pair, training=False))
    np.testing.assert_allclose(new, pair[1] + 2 * h * _numpy(mid.force(pair[0], training=False)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(carried, pair[0])

    leap = registry.FAMILIES["leapfrog"].block(8, step_size=h, index=2)
    new, carried = (_numpy(t) for t in leap(pair, training=False))
    expected = 2 * pair[0] - pair[1] - h * h * _numpy(leap.force(pair[0], training=False))
    np.testing.assert_allclose(new, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(carried, pair[0])


@pytest.fixture
def dtype_policy():
    yield keras.config.set_dtype_policy
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("family", REVERSIBLE)
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("float64", 1e-11)])
@pytest.mark.parametrize("training", [False, True])
def test_every_block_inside_a_stage_reconstructs_its_input(family, dtype, tolerance, training, dtype_policy):
    dtype_policy(dtype)
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 8)).astype(dtype)
    rows = reversible.reconstruction_errors(registry.FAMILIES[family].block, (1, 4, 16), ops.convert_to_tensor(x),
                                            step_size=0.5, training=training)
    assert [r["depth"] for r in rows] == [1, 4, 16]
    assert all(r["relative_error"] < tolerance for r in rows), rows
    assert rows[0]["relative_error"] <= rows[-1]["relative_error"]


def test_a_transition_is_not_invertible():
    block = registry.build_model("hamiltonian", 10, SHAPE, blocks_per_stage=(1, 1, 1)).get_layer("stage2_block1")
    with pytest.raises(ValueError, match="not invertible"):
        block.inverse(np.zeros((1, 8, 8, 64), "float32"))


def _loss_and_grads(model, x, y, method=None):
    """Loss, gradients and the moving statistics one training step leaves, restoring the model after
    (stochastic depth's seed states included, so that both passes draw the same masks)."""
    saved = [v.numpy() for v in model.non_trainable_variables]
    with tf.GradientTape() as tape:
        out = memory.call_layers(model.layers, x, True, method) if method else model(x, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, out)
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
    statistics = [v.numpy() for v in model.non_trainable_variables]
    for variable, value in zip(model.non_trainable_variables, saved):
        variable.assign(value)
    return float(loss), grads, statistics


def _relative(a, b):
    flat_a, flat_b = (np.concatenate([np.ravel(g) for g in grads]) for grads in (a, b))
    return float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_a))


@pytest.mark.parametrize("family, method", [(f, "reversible") for f in REVERSIBLE] + [("hamiltonian", "remat")])
def test_memory_efficient_gradients_equal_autodiff(family, method):
    model = registry.build_model(family, 10, SHAPE, 0.5, (3, 2, 2), weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8,) + SHAPE).astype("float32"), rng.integers(0, 10, 8)
    loss, grads, statistics = _loss_and_grads(model, x, y)
    loss_me, grads_me, statistics_me = _loss_and_grads(model, x, y, method)
    assert loss_me == pytest.approx(loss, rel=1e-6)
    assert _relative(grads, grads_me) < 1e-4
    for a, b in zip(statistics, statistics_me):  # moving statistics updated once, as in ordinary training
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", REVERSIBLE)
def test_memory_efficient_gradients_in_float64_and_with_stochastic_depth(family, dtype_policy):
    dtype_policy("float64")
    model = registry.build_model(family, 10, SHAPE, 0.5, (3, 2, 2), stochastic_depth=0.5)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8,) + SHAPE), rng.integers(0, 10, 8)
    _, grads, _ = _loss_and_grads(model, x, y)
    _, grads_me, _ = _loss_and_grads(model, x, y, "reversible")
    # 1e-7 is float32's rounding: the classifier computes in float32 under every policy (registry.build_net).
    assert _relative(grads, grads_me) < 1e-6


def test_memory_efficient_models_train_save_and_interpolate(tmp_path):
    model = registry.build_model("hamiltonian", 10, SHAPE, 1.0, (1, 2, 1), memory_efficient=True)
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(16,) + SHAPE).astype("float32"), rng.integers(0, 10, 16), batch_size=8,
                        verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").spec["memory_efficient"] is True
    assert interpolate(model).spec["memory_efficient"] is True


def test_memory_efficient_needs_a_reversible_family():
    with pytest.raises(ValueError, match="use a reversible family"):
        registry.build_model("resnet14", memory_efficient=True)
    with pytest.raises(ConfigError, match="--memory_efficient recomputes activations from the inverse"):
        TrainConfig("runs/x", model="lm_resnet20", memory_efficient=True)


@pytest.mark.slow
def test_multilevel_memory_efficient_hamiltonian_trains_resumes_and_records(tmp_path, tiny_cifar10):
    """The issue's command at toy scale: 1-1-1 -> 2-2-2, killed and resumed, ends as an uninterrupted run."""
    from ml_resnet_tf.training.trainer import train
    from tests.test_training import Interrupt, tiny_config, without_times

    changes = dict(model="hamiltonian", memory_efficient=True)  # a family name: start_blocks doubled once
    whole = train(tiny_config(tmp_path / "whole", tiny_cifar10, **changes), verbose=0, log=lambda line: None)
    config = tiny_config(tmp_path / "resumed", tiny_cifar10, **changes)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[Interrupt(epoch=1)], verbose=0, log=lambda line: None)
    resumed = train(config, verbose=0, log=lambda line: None)
    assert without_times(resumed) == without_times(whole)
    assert [c["blocks_per_stage"] for c in resumed["cycles"]] == [[1, 1, 1], [2, 2, 2]]
    assert resumed["flags"]["memory_efficient"] is True and resumed["status"] == "finished"
    model = keras.models.load_model(tmp_path / "resumed" / "model.keras")
    assert model.spec["family"] == "hamiltonian" and model.spec["memory_efficient"] is True


# Runs under KERAS_BACKEND=jax in its own process: memory-efficient gradients against jax.grad.
JAX_SCRIPT = """
import json, sys
import jax, keras, numpy as np
from ml_resnet_tf.bench import timing
from ml_resnet_tf.nets import registry
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 16, 16, 3)).astype("float32"), rng.integers(0, 10, 8)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
report = {}
for family in sys.argv[1].split(","):
    base = registry.build_model(family, 10, (16, 16, 3), 0.5, (3, 2, 2))
    efficient = registry.build_model(family, 10, (16, 16, 3), 0.5, (3, 2, 2), memory_efficient=True)
    efficient.set_weights(base.get_weights())
    results = []
    for model in (base, efficient):
        statistics = [v.value for v in model.non_trainable_variables]
        def f(weights):
            out, new = model.stateless_call(weights, statistics, x, training=True)
            return loss(y, out), new
        (value, new), grads = jax.jit(jax.value_and_grad(f, has_aux=True))([v.value for v in model.trainable_variables])
        results.append((float(value), np.concatenate([np.ravel(g) for g in grads]), new))
    (l0, g0, s0), (l1, g1, s1) = results
    efficient.compile(keras.optimizers.SGD(0.05), loss)
    fitted = efficient.fit(x, y, batch_size=4, verbose=0).history["loss"][-1]
    compiled = timing.compiled_step_memory(efficient, x, y)
    report[family] = {"compiled": compiled, "weight_bytes": 4 * efficient.count_params(),
                      "loss": [l0, l1], "relative": float(np.linalg.norm(g0 - g1) / np.linalg.norm(g0)),
                      "statistics": max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(s0, s1)),
                      "fit_loss": float(fitted)}
print("RESULT", json.dumps(report))
"""


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_memory_efficient_gradients_equal_autodiff_under_jax(tmp_path):
    result = helpers.run_module("tests.run_script", JAX_SCRIPT, ",".join(REVERSIBLE),
                                env={**os.environ, "KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    for family, r in report.items():
        assert r["loss"][1] == pytest.approx(r["loss"][0], rel=1e-5), family
        assert r["relative"] < 1e-4, (family, r)
        assert r["statistics"] < 1e-5 and np.isfinite(r["fit_loss"]), (family, r)
        # XLA's account of the compiled step: its arguments hold at least every weight, and it needs scratch
        assert r["compiled"]["argument_bytes"] >= r["weight_bytes"] and r["compiled"]["temp_bytes"] > 0, family


def test_memory_bench_reports_both_modes_and_the_targets(tmp_path):
    result = helpers.run_module("experiments.bench_memory", "--architectures=1-1-1,2-2-2", "--batch_size=4",
                                "--repeats=1", f"--output={tmp_path / 'memory.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "memory.json").read_text())
    assert [(r["blocks"], r["memory_efficient"]) for r in report["rows"]] == [
        ("1-1-1", False), ("1-1-1", True), ("2-2-2", False), ("2-2-2", True)]
    assert all(r["peak_bytes"] >= r["before_bytes"] > 0 for r in report["rows"])
    assert len(report["targets"]) == 4 and result.stdout.count("[met]") + result.stdout.count("[MISSED]") == 4
    bad = helpers.run_module("experiments.bench_memory", "--family=resnet")
    assert bad.returncode == 1 and helpers.error_lines(bad.stderr) == [
        "error: --family=resnet is not a reversible family; choose from hamiltonian, midpoint, leapfrog"]


def test_inverse_binary_reports_error_against_depth(tmp_path):
    result = helpers.run_module("experiments.inverse", "--depths=1,3", "--families=leapfrog", "--image_size=4",
                                "--width=4", "--batch_size=2", f"--output={tmp_path / 'inverse.json'}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "inverse.json").read_text())["rows"]
    assert [(r["dtype"], r["depth"]) for r in rows] == [("float32", 1), ("float32", 3), ("float64", 1), ("float64", 3)]
    assert all(r["usable"] for r in rows) and rows[3]["relative_error"] < 1e-12


def test_a_family_name_with_start_blocks_names_the_last_cycle():
    config = TrainConfig("runs/x", model="hamiltonian", start_blocks=(1, 1, 1), epochs=6, interpolate_at=(2, 4),
                         memory_efficient=True)
    assert [c.blocks_per_stage for c in config.cycles()] == [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
    with pytest.raises(ConfigError, match="--model=hamiltonian is a family: give --start_blocks"):
        TrainConfig("runs/x", model="hamiltonian")


def test_a_copied_batch_norm_holds_channels_its_source_only_saw_constant():
    """A Hamiltonian stage's second block sees the transition's zero-padded channels; its copies
    elsewhere in the refined stage do not, and must not divide them by sqrt(epsilon)."""
    model = registry.build_model("hamiltonian", 10, SHAPE, 0.5, (1, 2, 1))
    model(np.zeros((2,) + SHAPE, "float32"))
    source = model.get_layer("stage2_block2")
    variance = source.f.pre.moving_variance
    values = np.ones(variance.shape, "float32")
    values[:3] = 0.0  # channels that were identically zero
    variance.assign(values)
    source.f.pre.gamma.assign(np.full(variance.shape, 2.0, "float32"))
    refined = interpolate(model)
    for name in ("stage2_block2", "stage2_block3", "stage2_block4"):
        gamma = _numpy(refined.get_layer(name).f.pre.gamma)
        np.testing.assert_array_equal(gamma[:3], 0.0)
        np.testing.assert_array_equal(gamma[3:], 2.0)
