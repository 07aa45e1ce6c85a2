"""The ensemble view (ml_resnet_tf.analysis.ensemble) against brute-force enumeration of paths."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ml_resnet_tf import build_resnet
from ml_resnet_tf.analysis import ensemble, probes
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.runs import schema
from tests import helpers
from tests.test_analysis import linear_resnet
from tests.test_families import FAMILIES, images, trained


def enumerated_lengths(gains):
    """P(r) by visiting each of the 2^n paths: a path through the branches in S weighs prod_S a_l."""
    weights = np.zeros(len(gains) + 1)
    for taken in itertools.product((0, 1), repeat=len(gains)):
        weights[sum(taken)] += np.prod([a if t else 1.0 for a, t in zip(gains, taken)])
    return weights / weights.sum()


def test_depth_distribution_equals_path_enumeration():
    gains = np.random.default_rng(0).uniform(0.01, 3.0, 9)
    np.testing.assert_allclose(ensemble.depth_distribution(gains), enumerated_lengths(gains), rtol=1e-12)
    summary = ensemble.depth_summary(gains)
    lengths = np.arange(10)
    assert summary["mean_depth"] == pytest.approx(np.sum(gains / (1 + gains)), rel=1e-12)
    assert summary["std_depth"] == pytest.approx(np.sqrt(np.sum(gains / (1 + gains) ** 2)), rel=1e-12)
    assert summary["short_fraction"] == pytest.approx(enumerated_lengths(gains)[lengths < 4.5].sum(), rel=1e-12)


def test_equal_gains_give_the_binomial_of_the_notes():
    """Notes §3: one gain lambda in p blocks gives Binomial(p, lambda / (1 + lambda))."""
    p, gain = 54, 0.2
    q = gain / (1 + gain)
    binomial = [math.comb(p, r) * q ** r * (1 - q) ** (p - r) for r in range(p + 1)]
    np.testing.assert_allclose(ensemble.depth_distribution([gain] * p), binomial, rtol=1e-9, atol=1e-300)
    assert ensemble.depth_summary([gain] * p)["relative_depth"] == pytest.approx(q)


def test_the_gain_of_a_linear_block_is_its_step_times_its_slope():
    """Every block of ``linear_resnet`` maps Y to (1 + h c) Y, so a_l = h c for each image exactly."""
    model = linear_resnet(4, 0.5, 0.6)
    x = np.abs(np.random.default_rng(0).normal(size=(6, 32, 32, 3))).astype("float32")
    assert list(ensemble.block_gains(model, x).values()) == pytest.approx([0.3] * 4, rel=1e-5)


def full_gradient(model, inputs, labels):
    first = ensemble._first_block(model)
    x = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        state = x
        for layer in model.layers[first:]:
            state = layer(state, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(labels, state, from_logits=True))
    return tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_path_gradients_of_all_subsets_sum_to_the_gradient(family):
    """Veit et al.'s path decomposition is exact: each block's Jacobian is J_skip + J_branch, so the
    gradients along all 2^n branch subsets add up to the net's own. Every family, through ``skip`` alone.
    Masking also leaves the forward pass as it is."""
    model = trained(family)
    n = len(odenet.blocks(model))
    first = ensemble._first_block(model)
    inputs = probes.state_after(model, images(1), first)
    label = np.array([3])
    patterns = np.array(list(itertools.product((0.0, 1.0), repeat=n)), "float32")
    batch = np.repeat(keras.ops.convert_to_numpy(inputs), len(patterns), axis=0)
    per_path = ensemble.path_gradient(model, batch, np.repeat(label, len(patterns)), patterns)
    whole = full_gradient(model, inputs, label)
    np.testing.assert_allclose(per_path.sum(0, keepdims=True), whole, atol=1e-5 * np.abs(whole).max(), rtol=1e-4)
    gains = list(ensemble.block_gains(model, images(4)).values())  # this net's own path weights
    assert len(gains) == n and all(g > 0 for g in gains)
    np.testing.assert_allclose(ensemble.depth_distribution(gains), enumerated_lengths(gains), rtol=1e-12)
    assert np.abs(per_path[0]).max() > 0 and np.abs(per_path[-1]).max() > 0  # both extremes carry gradient
    state = inputs
    for block in odenet.blocks(model):
        mixed = ensemble.masked_step(block, state, np.array([1.0], "float32"))
        state = block(state, training=False)
        for ours, theirs in zip(tf.nest.flatten(mixed), tf.nest.flatten(state)):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), keras.ops.convert_to_numpy(theirs),
                                       rtol=1e-5, atol=1e-5)


def test_gradient_by_length_counts_paths_and_finds_the_window():
    keras.utils.set_random_seed(0)
    model = build_resnet((2, 1, 1), num_classes=10)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 10)
    study = ensemble.gradient_by_length(model, x, y, samples=5, batch_size=8)
    rows = study["per_length"]
    assert [r["k"] for r in rows] == [0, 1, 2, 3, 4] and [r["paths"] for r in rows] == [1, 4, 6, 4, 1]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    low, high = study["window"]
    assert low <= study["peak_length"] <= high and study["window_share"] >= ensemble.GRADIENT_SHARE
    assert ensemble.gradient_by_length(model, x, y, samples=5, batch_size=8) == study  # seeded
    assert [r["k"] for r in ensemble.gradient_by_length(model, x, y, 3, ks=[3, 1])["per_length"]] == [1, 3]
    with pytest.raises(ValueError, match="path lengths must lie in 0 ... 4"):
        ensemble.gradient_by_length(model, x, y, 3, ks=[5])


def test_narrowest_window_prefers_the_shortest_run():
    shares = np.array([0.02, 0.05, 0.5, 0.4, 0.03])
    assert ensemble._narrowest_window(shares, 0.9) == (2, 3)
    assert ensemble._narrowest_window(np.array([0.5, 0.5]), 0.9) == (0, 1)


def test_history_reads_the_recorded_gains_and_scales():
    payload = helpers.results_payload((0.3, 0.5), cycles=[(0, 2, (3,))])
    payload["cycles"][0]["gains_at_start"] = {f"b{i}": 0.1 for i in range(3)}
    for epoch, gain in zip(payload["epochs"], (0.5, 1.0)):
        epoch["block_scalars"] = {f"b{i}": {"gain": gain * (i + 1), "bn_gamma": gain * (i + 1), "kernel_norm": 2.0}
                                  for i in range(3)}
    rows = ensemble.history(payload)
    assert [(r["epoch"], r["at_start"]) for r in rows] == [(0, True), (1, False), (2, False)]
    assert [r["mean_depth"] for r in rows] == pytest.approx([ensemble.depth_summary(g)["mean_depth"] for g in (
        [0.1] * 3, [0.5, 1.0, 1.5], [1.0, 2.0, 3.0])])
    assert rows[2]["mean_bn_gamma"] == pytest.approx(2.0) and "mean_bn_gamma" not in rows[0]
    assert ensemble.scale_correlation(rows) == pytest.approx(1.0)  # gain proportional to gamma here
    assert ensemble.history(helpers.results_payload((0.3,))) == []  # a run recorded before the gains


def test_schema_3_reads_runs_recorded_before_the_ensemble_fields():
    payload = helpers.results_payload((0.3,))
    payload["schema_version"] = 2
    del payload["epochs"][0]["ensemble"]
    payload["cycles"] = [{"cycle": 1, "start_epoch": 0, "end_epoch": 1, "blocks_per_stage": [1], "step_size": 1.0,
                          "params": 1, "xla": False}]
    loaded = schema.load(payload)
    assert loaded["epochs"][0]["ensemble"] is None and loaded["cycles"][0]["gains_at_start"] == {}
    bad = helpers.results_payload((0.3,))
    bad["epochs"][0]["ensemble"] = {"num_blocks": 3}
    with pytest.raises(schema.SchemaError, match="ensemble"):
        schema.validate(bad)
