"""Lesion studies (Section 3.3): real lesioned models, Eq. 8, shuffles."""

import keras
import numpy as np
import pytest

from ml_resnet_tf import build_resnet
from ml_resnet_tf.analysis import lesions, probes
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.nets.odenet import Shortcut
from ml_resnet_tf.transforms import lesion


@pytest.fixture(scope="module")
def trained_like():
    """A 2-2-3 ResNet whose batch norms hold non-trivial moving statistics, as after training."""
    keras.utils.set_random_seed(3)
    model = build_resnet((2, 2, 3), num_classes=10)
    rng = np.random.default_rng(3)
    for layer in model.layers:
        for weight in layer.weights:
            if "moving_variance" in weight.path:
                weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype("float32"))
            elif "moving_mean" in weight.path or "beta" in weight.path:
                weight.assign(rng.normal(0, 0.3, weight.shape).astype("float32"))
    images = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    return model, images


def outputs(model, images):
    return probes.features(model, images, len(model.layers))


def test_a_lesioned_model_equals_a_model_built_without_those_blocks(trained_like):
    model, images = trained_like
    lesioned = lesion.remove_blocks(model, ["stage1_block2", "stage3_block2"])
    explicit = build_resnet((1, 2, 2), num_classes=10)
    kept = {"stage3_block2": "stage3_block3"}  # the explicit model's blocks are numbered without gaps
    for layer in explicit.layers:
        layer.set_weights(model.get_layer(kept.get(layer.name, layer.name)).get_weights())
    np.testing.assert_allclose(outputs(lesioned, images), outputs(explicit, images), rtol=1e-5, atol=1e-5)
    assert odenet.blocks_per_stage(lesioned) == (1, 2, 2)
    assert outputs(model, images).shape == (16, 10)  # the trained model itself is untouched


def test_a_deleted_downsampling_block_leaves_its_shortcut(trained_like, tmp_path):
    model, images = trained_like
    lesioned = lesion.remove_blocks(model, ["stage2_block1"])
    explicit = keras.Sequential([keras.Input((32, 32, 3))] + [
        Shortcut(32, 2) if layer.name == "stage2_block1" else layer for layer in model.layers])
    np.testing.assert_allclose(outputs(lesioned, images), outputs(explicit, images), rtol=1e-6)
    assert Shortcut.from_config(lesioned.layers[3].get_config()).get_config() == lesioned.layers[3].get_config()
    lesioned.save(tmp_path / "lesioned.keras")  # a real model: it saves and reloads
    np.testing.assert_allclose(outputs(keras.models.load_model(tmp_path / "lesioned.keras"), images),
                               outputs(lesioned, images), rtol=1e-6)


@pytest.mark.parametrize("block", ["stage1_block1", "stage1_block2", "stage2_block1", "stage3_block3"])
def test_eq8_deleting_a_block_changes_the_next_feature_map_by_h_times_f(trained_like, block):
    model, images = trained_like
    check = lesions.eq8_check(model, block, images)
    assert check["relative_error"] < 1e-5
    assert check["relative_change"] > 0.01  # the residual is not trivially zero


def test_shuffles_keep_downsampling_blocks_first_and_change_only_order(trained_like):
    model, images = trained_like
    rng = np.random.default_rng(0)
    orders = {tuple(lesion.shuffled_order(model, rng, stages=[3])) for _ in range(20)}
    assert {order[:5] for order in orders} == {("stage1_block1", "stage1_block2", "stage2_block1",
                                                "stage2_block2", "stage3_block1")}
    assert len(orders) == 2  # stage 3's two free blocks, in either order
    identity = lesion.reorder_blocks(model, [b.name for s in odenet.stages(model) for b in s])
    np.testing.assert_array_equal(outputs(identity, images), outputs(model, images))
    with pytest.raises(ValueError, match="must name each"):
        lesion.reorder_blocks(model, ["stage1_block1"])


def test_lesion_study_reports_every_analysis(trained_like):
    model, images = trained_like
    labels = np.arange(16) % 10
    study = lesions.lesion_study(model, images, labels, draws=2, seed=1, max_removed=2)
    assert [r["downsampling"] for r in study["single_block"]] == [False, False, True, False, True, False, False]
    assert [(r["removed"], len(r["test_errors"])) for r in study["random_deletions"]] == [(1, 2), (2, 2)]
    assert [r["stages"] for r in study["shuffles"]] == [1, 2, 3, "all"]
    assert len(study["eq8"]) == 7 and max(c["relative_error"] for c in study["eq8"]) < 1e-5
    assert 0 <= study["test_error"] <= 1
