"""ResidualBlock: Eq. 2 with an explicit step size and a parameter-free shortcut."""

import keras
import numpy as np
import pytest

from ml_resnet_tf import ResidualBlock
from tests.helpers import run_layer_test


@pytest.mark.parametrize("filters, strides, input_shape, output_shape", [
    (16, 1, (8, 8, 16), (8, 8, 16)),   # a block inside a stage
    (32, 2, (8, 8, 16), (4, 4, 32)),   # the first block of a downsampling stage
    (32, 2, (7, 7, 16), (4, 4, 32)),   # odd sizes round up, like a 'same' stride-2 conv
])
def test_layer_contract(filters, strides, input_shape, output_shape, tmp_path):
    block = ResidualBlock(filters, strides=strides, step_size=0.5, kernel_regularizer="l2", name="b")
    # Trainable: bn1 gamma/beta, conv1, bn2 gamma/beta, conv2. Non-trainable: two moving means and variances.
    run_layer_test(block, input_shape, output_shape, expected_trainable=6, expected_non_trainable=4,
                   tmp_path=tmp_path)


def test_output_is_shortcut_plus_step_size_times_residual():
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 16)).astype("float32")
    block = ResidualBlock(32, strides=2, step_size=0.25)
    out = keras.ops.convert_to_numpy(block(x))
    residual = keras.ops.convert_to_numpy(block.residual(x))
    shortcut = keras.ops.convert_to_numpy(block.shortcut(x))
    np.testing.assert_allclose(out, shortcut + 0.25 * residual, rtol=1e-5, atol=1e-6)


def test_downsampling_shortcut_subsamples_and_zero_pads():
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 16)).astype("float32")
    block = ResidualBlock(32, strides=2, step_size=0.0)
    out = keras.ops.convert_to_numpy(block(x))
    np.testing.assert_array_equal(out[..., :16], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(out[..., 16:], 0.0)
    identity = ResidualBlock(16)
    identity.build(x.shape)
    assert block.changes_shape and not identity.changes_shape


def test_shortcut_has_no_parameters():
    block = ResidualBlock(32, strides=2)
    block.build((None, 8, 8, 16))
    expected = 2 * 16 + 3 * 3 * 16 * 32 + 2 * 32 + 3 * 3 * 32 * 32  # BN, conv, BN, conv: nothing else
    assert sum(int(np.prod(w.shape)) for w in block.trainable_weights) == expected


def test_rejects_a_shortcut_that_would_need_a_projection():
    with pytest.raises(ValueError, match="more than filters"):
        ResidualBlock(16)(np.zeros((1, 4, 4, 32), "float32"))
    with pytest.raises(ValueError, match="strides"):
        ResidualBlock(16, strides=3)
