"""The layers every family builds from, and the state helper every block reads: below ``odenet`` so
that branch layers need no block."""

from __future__ import annotations

import keras
from keras import ops

# The paper is silent on batch-norm hyper-parameters; these are the ones of the
# pre-activation CIFAR ResNets it follows (He et al. 2016, fb.resnet.torch). A
# momentum of 0.9 also lets the moving statistics settle within the few hundred
# steps of the small-scale runs we test with.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
# A channel whose moving variance is below this fraction of its layer's median is taken as constant
# when a block is copied (refine_from). Relative, since a constant channel's moving variance only
# decays geometrically from its initial 1 (momentum 0.9: 7e-10 after 200 steps, 3e-5 after 100).
CONSTANT_VARIANCE = 1e-4


def main(state):
    """``Y_j``: the state itself, or the first entry of a multi-step state."""
    return state[0] if isinstance(state, (tuple, list)) else state


def batch_norm(name: str, synchronized: bool = False) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                           synchronized=synchronized, name=name)


def conv3x3(filters: int, name: str, regularizer, strides: int = 1) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                               kernel_initializer="he_normal", kernel_regularizer=regularizer, name=name)


def conv_flops(height, width, kernel, in_channels, out_channels) -> int:
    return 2 * height * width * kernel * kernel * in_channels * out_channels  # a multiply-add is 2 FLOPs


def pad_shortcut(inputs, filters: int, strides: int):
    """P(Y) without parameters: every ``strides``-th pixel, zero channels appended up to ``filters``."""
    if strides == 2:
        inputs = inputs[:, ::2, ::2, :]
    extra = filters - inputs.shape[-1]
    if extra:
        inputs = ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, extra]])
    return inputs
