"""Residual norms on a hand-built model whose answer is known, and the confidence intervals of Fig. 10."""

import numpy as np
import pytest

from ml_resnet_tf import build_resnet
from ml_resnet_tf.analysis import probes
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.nets.primitives import BN_EPSILON
from ml_resnet_tf.paper import plotting


def linear_resnet(blocks, step_size, c):
    """One stage of 16 channels in which every block computes F(Y) = c * Y for Y >= 0.

    Batch norms are the identity, conv1 is the identity and conv2 is c times the identity, so
    F(Y) = c * relu(relu(Y)) = c * Y on non-negative features. The stem copies the three
    image channels into the first three of sixteen. Hence Y_{j+1} = (1 + h c) Y_j exactly.
    """
    model = build_resnet((blocks,), num_classes=2, step_size=step_size)
    identity = np.zeros((3, 3, 16, 16), "float32")
    identity[1, 1] = np.eye(16)
    stem = np.zeros((3, 3, 3, 16), "float32")
    stem[1, 1, :, :3] = np.eye(3)
    model.get_layer("stem_conv").kernel.assign(stem)
    for block in odenet.stages(model)[0]:
        for bn in (block.bn1, block.bn2):
            bn.moving_variance.assign(np.full(16, 1 - BN_EPSILON, "float32"))
        block.conv1.kernel.assign(identity)
        block.conv2.kernel.assign(c * identity)
    return model


@pytest.mark.parametrize("blocks, h", [(3, 1.0), (6, 0.5)])
def test_residual_norms_match_the_closed_form(blocks, h):
    c = 0.2
    images = np.random.default_rng(0).uniform(0.1, 1.0, size=(7, 32, 32, 3)).astype("float32")
    images[:3] *= 3  # examples of different norms: the mean is over per-example norms
    x_norm = np.linalg.norm(images.reshape(7, -1), axis=1).mean()
    norms = probes.residual_norms(linear_resnet(blocks, h, c), images, batch_size=4)
    growth = (1 + h * c) ** np.arange(blocks)
    np.testing.assert_allclose([b["input_norm"] for b in norms], x_norm * growth, rtol=1e-5)
    np.testing.assert_allclose([b["residual_norm"] for b in norms], h * c * x_norm * growth, rtol=1e-5)
    np.testing.assert_allclose([b["f_norm"] for b in norms], c * x_norm * growth, rtol=1e-5)
    assert [b["time"] for b in norms] == pytest.approx(h * np.arange(blocks))
    assert [b["index"] for b in norms] == list(range(1, blocks + 1))
    assert probes.mean_residual_norm(norms) == pytest.approx(h * c * x_norm * growth.mean(), rel=1e-5)


def test_confidence_interval_uses_student_t():
    mean, half = plotting.confidence_interval([[v] for v in range(10)])
    assert mean[0] == pytest.approx(4.5)
    assert half[0] == pytest.approx(2.262 * np.std(range(10), ddof=1) / np.sqrt(10), rel=1e-3)
    assert plotting.confidence_interval([[1.0, 2.0]])[1].tolist() == [0.0, 0.0]


def test_gains_stay_finite_under_mixed_float16():
    """A float16 sum of squares over a feature map overflows: the norms are taken in float32 (issue 25's
    'effective depth of nan'), which results.json now refuses to hold."""
    import keras

    from ml_resnet_tf import build_model
    from ml_resnet_tf.analysis import ensemble

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model("resnet", blocks_per_stage=(1, 1, 1))
        x = (np.random.default_rng(0).normal(size=(4, 32, 32, 3)) * 50).astype("float32")
        gains = ensemble.block_gains(model, x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(np.isfinite(g) for g in gains.values())
