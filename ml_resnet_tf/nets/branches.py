"""The branches of the reversible families: tied-weight convolutions ``K`` and ``K^T`` (notes §1.3-1.5,
§7.3), and the normalised stem they start from."""

from __future__ import annotations

import math

import keras
from keras import ops

from ml_resnet_tf.nets.primitives import batch_norm, conv3x3, conv_flops

# Interpolation's identity partner (ml_resnet_tf.transforms.interpolation) cannot be an exactly zero branch:
# with tied weights F = K^T s(BN(K x)), K = 0 zeroes both factors and gamma = beta = 0 sits on the
# ReLU's kink, and either way no gradient ever reaches the branch. It starts at gamma = ZERO_GAIN.
ZERO_GAIN = 1e-3


class TiedConv(keras.layers.Layer):
    """One 3x3 kernel ``K`` (no bias) used as the convolution and as its adjoint ``K^T``.

    ``ops.conv_transpose`` reads its kernel as ``[spatial, out, in]``, so the conv kernel passed
    unchanged *is* the adjoint, even for a non-square ``K`` (notes §7.3); tests check
    ``<Kx, y> = <x, K^T y>``. The init is the reference's truncated normal with std
    ``sqrt(2 / (9 C_out))`` (notes §1.7).
    """

    def __init__(self, channels_out: int, regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.channels_out, self.regularizer = int(channels_out), regularizer

    def build(self, input_shape):
        std = math.sqrt(2.0 / (9 * self.channels_out))
        self.kernel = self.add_weight(shape=(3, 3, int(input_shape[-1]), self.channels_out), name="kernel",
                                      initializer=keras.initializers.TruncatedNormal(stddev=std),
                                      regularizer=self.regularizer)

    def call(self, x):
        return ops.conv(x, self._kernel(), strides=1, padding="same")

    def adjoint(self, y):
        return ops.conv_transpose(y, self._kernel(), strides=1, padding="same")

    def _kernel(self):
        """The kernel in the compute dtype. Keras casts it only inside a layer's ``__call__``; the
        memory-efficient backward pass (``nets.memory``) calls the adjoint outside one, where a
        mixed-precision input would meet the float32 variable (a TypeError in TensorFlow's conv)."""
        return ops.cast(self.kernel, self.compute_dtype)


def _norm_gain(bn) -> None:
    bn.gamma.assign(ops.full(bn.gamma.shape, ZERO_GAIN, bn.gamma.dtype))


class SymmetricBranch(keras.layers.Layer):
    """``K^T ReLU(BN(K pre(x)))``: the Hamiltonian's ``F`` and ``G`` (notes §1.3), leapfrog's force (§1.5).

    ``pre`` is a batch norm (``ham1122``), or nothing where the input was just normalised (the
    Hamiltonian's very first ``F``, after the stem's BN -> ReLU). BN's beta is the bias ``b``.
    """

    def __init__(self, channels: int, pre_norm: bool = True, regularizer=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.pre = batch_norm("pre_bn", synchronized) if pre_norm else None
        self.conv = TiedConv(channels, regularizer, name="K")
        self.bn = batch_norm("bn", synchronized)

    def build(self, input_shape):
        if self.pre is not None:
            self.pre.build(input_shape)
        self.conv.build(input_shape)
        self.bn.build(tuple(input_shape[:-1]) + (self.conv.channels_out,))

    def call(self, x, training=None):
        if self.pre is not None:
            x = self.pre(x, training=training)
        return self.conv.adjoint(ops.relu(self.bn(self.conv(x), training=training)))

    def shrink(self):
        _norm_gain(self.bn)

    def flops(self, height: int, width: int, channels: int) -> int:
        inner = self.conv.channels_out
        norms = (2 * channels if self.pre is not None else 0) + 3 * inner  # BN scale+shift, ReLU
        return 2 * conv_flops(height, width, 3, channels, inner) + height * width * norms


class AntisymmetricBranch(keras.layers.Layer):
    """``ReLU(BN(A x))`` with ``A = [[0, K], [-K^T, 0]]`` on the channel halves of ``x`` (notes §1.4, form b).

    ``A`` is antisymmetric for any ``K`` (its eigenvalues are imaginary), the property the midpoint
    net's stability argument rests on; BN then scales and shifts per channel, as in the other
    reversible branches.
    """

    def __init__(self, channels: int, regularizer=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.conv = TiedConv(channels // 2, regularizer, name="K")
        self.bn = batch_norm("bn", synchronized)

    def build(self, input_shape):
        half = int(input_shape[-1]) // 2
        self.conv.build(tuple(input_shape[:-1]) + (half,))
        self.bn.build(input_shape)

    def call(self, x, training=None):
        y, z = ops.split(x, 2, axis=-1)
        ax = ops.concatenate([self.conv(z), -self.conv.adjoint(y)], axis=-1)
        return ops.relu(self.bn(ax, training=training))

    def shrink(self):
        _norm_gain(self.bn)

    def flops(self, height: int, width: int, channels: int) -> int:
        return 2 * conv_flops(height, width, 3, channels // 2, channels // 2) + 4 * height * width * channels



def normalized_stem(width: int, regularizer, synchronized: bool) -> list:
    """conv3x3 -> BN -> ReLU: the reversible nets' stem (notes §1.6), so the first block sees a
    normalised input."""
    return [conv3x3(width, "stem_conv", regularizer), batch_norm("stem_bn", synchronized),
            keras.layers.ReLU(name="stem_relu")]
