"""Interpolation (Fig. 5, Appendix B): copied weights, the ODE limit, the single-block rule."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from ml_resnet_tf import blocks_per_stage, build_resnet, compare_models, interpolate, step_size
from ml_resnet_tf.nets import registry
from ml_resnet_tf.nets.odenet import stages
from ml_resnet_tf.nets.registry import FAMILIES
from ml_resnet_tf.transforms.interpolation import IDENTITY, _rule_sources, interpolation_sources


def trained(blocks, step=1.0, **kwargs):
    """A model after a few SGD steps on random data, so no weight or BN statistic is at its initial value."""
    model = build_resnet(blocks, step_size=step, **kwargs)
    rng = np.random.default_rng(0)
    model.compile(keras.optimizers.SGD(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(rng.normal(size=(32, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 32),
              batch_size=16, epochs=2, verbose=0)
    return model


def images(n=32, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 32, 32, 3)).astype("float32")


def same_weights(a, b):
    return len(a.get_weights()) == len(b.get_weights()) and all(
        np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.mark.parametrize("n, keeps_shape, expected", [
    (1, True, [1, 1]),             # stage 1: the block keeps its shape, Fig. 5 copies it
    (1, False, [1, IDENTITY]),     # a lone downsampling block: nothing to copy
    (2, False, [1, 2, 2, 2]),      # Appendix B: block 2' copies old block 2 (3')
    (3, False, [1, 2, 2, 2, 3, 3]),  # Fig. 5's example stage
    (3, True, [1, 2, 2, 2, 3, 3]),
])
def test_sources(n, keeps_shape, expected):
    assert interpolation_sources(n, keeps_shape) == expected


@pytest.mark.parametrize("blocks", [(2, 2, 2), (3, 5, 7), (1, 2, 1), (1, 1, 1)])
def test_copies_every_parameter(blocks):
    old = trained(blocks, step=1.0, weight_decay=2e-4)
    new = interpolate(old)
    assert blocks_per_stage(new) == tuple(2 * b for b in blocks)
    assert step_size(new) == 0.5
    for layer in ("stem_conv", "final_bn", "classifier"):
        assert same_weights(new.get_layer(layer), old.get_layer(layer)), layer
    for old_blocks, new_blocks in zip(stages(old), stages(new)):
        sources = interpolation_sources(len(old_blocks), not old_blocks[0].changes_shape)
        for index, (block, source) in enumerate(zip(new_blocks, sources), start=1):
            assert block.step_size == 0.5
            assert block.kernel_regularizer is not None
            if index % 2:  # old block i is new block 2i - 1, exactly
                assert same_weights(block, old_blocks[index // 2]), block.name
            elif source != IDENTITY:
                assert same_weights(block, old_blocks[source - 1]), block.name


def test_input_model_is_left_untouched():
    old = trained((1, 2, 2))
    weights, x = [w.copy() for w in old.get_weights()], images()
    logits = old.predict(x, verbose=0)
    interpolate(old)
    assert all(np.array_equal(a, b) for a, b in zip(weights, old.get_weights()))
    assert step_size(old) == 1.0 and blocks_per_stage(old) == (1, 2, 2)
    np.testing.assert_array_equal(old.predict(x, verbose=0), logits)


def test_works_on_a_model_reloaded_from_keras_file(tmp_path):
    old = trained((2, 3, 1))
    path = os.path.join(tmp_path, "m.keras")
    old.save(path)
    x = images()
    from_memory = interpolate(old).predict(x, verbose=0)
    from_file = interpolate(keras.models.load_model(path)).predict(x, verbose=0)
    # The identity-initialized block draws fresh conv1 weights, but F = 0 makes them irrelevant at first.
    np.testing.assert_allclose(from_file, from_memory, rtol=1e-5, atol=1e-5)


def test_a_lone_downsampling_block_gets_an_identity_partner():
    old = trained((1, 1, 1))
    new = interpolate(old)
    partner = new.get_layer("stage2_block2")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(partner.conv2.kernel), 0.0)
    y = np.random.default_rng(3).normal(size=(2, 16, 16, 32)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(partner(y, training=False)), y)
    # ...and it can learn: its zero kernel receives a gradient, since conv1 is freshly initialized.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(partner(tf.constant(y), training=True) * y)
    gradient = tape.gradient(loss, partner.conv2.kernel)
    assert float(tf.reduce_max(tf.abs(gradient))) > 0
    # Stage 1's lone block keeps its shape, so its partner is a copy (Fig. 5).
    assert same_weights(new.get_layer("stage1_block2"), old.get_layer("stage1_block1"))


def test_names_follow_depth():
    assert interpolate(build_resnet((2, 2, 2), name="resnet14")).name == "resnet26"
    assert interpolate(build_resnet((4, 4, 4), base_width=32, name="wresnet26")).name == "wresnet50"
    assert interpolate(build_resnet((1, 1, 1), name="custom")).name == "custom"


def test_logit_change_shrinks_with_the_step_size():
    """Both models discretize one ODE (Sections 3-4): the smaller h, the closer they are."""
    weights, x = trained((2, 2, 2)).get_weights(), images(64)
    changes = []
    for h in (0.25, 0.125, 0.0625):
        model = build_resnet((2, 2, 2), step_size=h)
        model.set_weights(weights)  # the same F at every h: only the discretization differs
        changes.append(compare_models(model, interpolate(model), x)["relative_logit_change"])
    assert changes[1] < 0.75 * changes[0] and changes[2] < 0.75 * changes[1], changes
    assert changes[2] < 0.1, changes


def test_compare_models():
    model, x = trained((1, 1, 1)), images()
    assert compare_models(model, model, x) == {"top1_agreement": 1.0, "relative_logit_change": 0.0}
    other = build_resnet((1, 1, 1))
    result = compare_models(model, other, x)
    assert 0 <= result["top1_agreement"] <= 1 and result["relative_logit_change"] > 0.1


@pytest.mark.parametrize("n, keeps_shape, rule, expected", [
    (3, False, "copy", [(1,), (2,), (2,), (2,), (3,), (3,)]),
    (3, False, "linear", [(1,), (2,), (2,), (2, 3), (3,), (3,)]),  # between neighbours; the last extrapolates
    (3, True, "linear", [(1,), (1, 2), (2,), (2, 3), (3,), (3,)]),
    (1, False, "linear", [(1,), ()]),  # a lone downsampling block: nothing to average, the identity step
    (3, False, "zero", [(1,), (), (2,), (), (3,), ()]),
])
def test_rule_sources(n, keeps_shape, rule, expected):
    assert _rule_sources(n, keeps_shape, rule) == expected


# The families whose zero branch is exactly zero and whose zero step leaves the state as it is.
EXACT_ZERO = {"resnet", "wresnet"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_zero_rule_keeps_h_and_preserves_the_function_where_it_promises(family):
    old = registry.build_model(family, blocks_per_stage=(1, 2, 1), step_size=0.5)
    x = images(8)
    old(x, training=True)  # moving statistics away from their initial values
    new = interpolate(old, rule="zero")
    assert blocks_per_stage(new) == (2, 4, 2) and step_size(new) == 0.5
    for training in (False, True):
        before, after = (keras.ops.convert_to_numpy(m(x, training=training)) for m in (old, new))
        if family in EXACT_ZERO:
            np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5, err_msg=f"training={training}")
        else:
            assert not np.allclose(after, before, rtol=1e-5, atol=1e-5)


def test_the_linear_rule_averages_neighbours_and_halves_h():
    old = trained((3, 3, 3))
    new = interpolate(old, rule="linear")
    assert blocks_per_stage(new) == (6, 6, 6) and step_size(new) == 0.5
    for old_blocks, new_blocks in zip(stages(old), stages(new)):
        assert same_weights(new_blocks[4], old_blocks[2])  # old block 3 stays new block 5
        for got, a, b in zip(new_blocks[3].get_weights(), old_blocks[1].get_weights(), old_blocks[2].get_weights()):
            np.testing.assert_allclose(got, (a + b) / 2, rtol=1e-6)  # block 4 sits between old 2 and 3
        assert same_weights(new_blocks[5], old_blocks[2])  # after the last block: its copy
    with pytest.raises(ValueError, match="unknown interpolation rule 'cubic': choose from copy, linear, zero"):
        interpolate(old, rule="cubic")
