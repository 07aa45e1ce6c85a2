"""The residual block as one forward-Euler step of an ODE.

A block computes ``Y_{j+1} = P(Y_j) + h * F(Y_j)`` (Eq. 2), where ``F`` is the
pre-activation residual module BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 3x3 conv
(Section 3.1, Fig. 2) and ``h`` is the *explicit* step size of Appendix C.

``P`` is the identity, except in a block that halves the resolution and widens
the channels, where it subsamples by 2 and zero-pads the new channels. That
shortcut has no parameters, which is what Table 5's counts require; it also keeps
every parameter of the model inside ``F``, so that interpolation (Fig. 5) copies
whole blocks and nothing else.

Only ``keras.ops`` and ``keras.layers`` are used, so the block runs under every
Keras 3 backend.
"""

import keras
from keras import ops

# The paper is silent on batch-norm hyper-parameters; these are the ones of the
# pre-activation CIFAR ResNets it follows (He et al. 2016, fb.resnet.torch). A
# momentum of 0.9 also lets the moving statistics settle within the few hundred
# steps of the small-scale runs we test with.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def shortcut(inputs, filters, strides):
    """P(Y): every ``strides``-th pixel, with zero channels appended up to ``filters``."""
    if strides == 2:
        inputs = inputs[:, ::2, ::2, :]
    extra = filters - inputs.shape[-1]
    if extra:
        inputs = ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, extra]])
    return inputs


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class ResidualBlock(keras.layers.Layer):
    """Pre-activation residual block with an explicit step size (Eq. 2).

    Args:
      filters: output channels. Must be at least the input channels; extra
        channels of the shortcut are zeros.
      strides: 1, or 2 for the first block of a downsampling stage.
      step_size: ``h``, the factor on the residual branch. Interpolation halves it.
      kernel_regularizer: applied to both convolution kernels (weight decay).
      synchronized: batch-norm statistics over all replicas of a ``tf.distribute`` strategy
        (TensorFlow backend only) instead of each replica's share of the batch.
    """

    def __init__(self, filters, strides=1, step_size=1.0, kernel_regularizer=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2, got {strides}")
        self.filters = int(filters)
        self.strides = int(strides)
        self.step_size = float(step_size)
        self.synchronized = bool(synchronized)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        conv = dict(kernel_size=3, padding="same", use_bias=False,
                    kernel_initializer="he_normal", kernel_regularizer=self.kernel_regularizer)
        norm = dict(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=self.synchronized)
        self.bn1 = keras.layers.BatchNormalization(name="bn1", **norm)
        self.conv1 = keras.layers.Conv2D(self.filters, strides=self.strides, name="conv1", **conv)
        self.bn2 = keras.layers.BatchNormalization(name="bn2", **norm)
        self.conv2 = keras.layers.Conv2D(self.filters, name="conv2", **conv)

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels > self.filters:
            raise ValueError(
                f"{self.name}: input has {in_channels} channels, more than filters={self.filters}; "
                "a parameter-free shortcut can only zero-pad, not project")
        self.bn1.build(input_shape)
        self.conv1.build(input_shape)
        mid_shape = self.conv1.compute_output_shape(input_shape)
        self.bn2.build(mid_shape)
        self.conv2.build(mid_shape)

    @property
    def changes_shape(self):
        """True for a downsampling block, whose shortcut is not the identity."""
        return self.strides != 1 or self.bn1.gamma.shape[0] != self.filters

    def residual(self, inputs, training=None):
        """F(Y): the residual module before it is scaled by the step size."""
        x = ops.relu(self.bn1(inputs, training=training))
        x = self.conv1(x)
        x = ops.relu(self.bn2(x, training=training))
        return self.conv2(x)

    def shortcut(self, inputs):
        """P(Y): identity, or stride-2 subsampling with zero-padded channels."""
        return shortcut(inputs, self.filters, self.strides)

    def call(self, inputs, training=None):
        return self.shortcut(inputs) + self.step_size * self.residual(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            step_size=self.step_size,
            synchronized=self.synchronized,
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
        )
        return config


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class Shortcut(keras.layers.Layer):
    """A residual block with its residual module removed: ``Y_{j+1} = P(Y_j)``.

    This is what deleting a downsampling block leaves (Section 3.3). A block that
    keeps the shape can simply be left out, but one that halves the resolution and
    widens the channels cannot: the blocks after it expect its output's shape.
    Removing only ``h * F`` keeps that shape and is exactly the removal Eq. 8 analyses.
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, inputs):
        return shortcut(inputs, self.filters, self.strides)

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1:3]
        if self.strides == 2:
            height, width = [None if d is None else (d + 1) // 2 for d in (height, width)]
        return (input_shape[0], height, width, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}
