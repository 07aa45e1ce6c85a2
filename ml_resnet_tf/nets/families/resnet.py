"""ResNet and Wide ResNet (Section 5.1, Table 5): forward Euler, ``Y_{j+1} = P(Y_j) + h F(Y_j)`` (Eq. 2).

``F`` is the pre-activation module BN -> ReLU -> 3x3 conv -> BN -> ReLU -> 3x3 conv (Section
3.1, Fig. 2), with the stride on the first convolution. ``P`` is the identity, except in a
block that halves the resolution and widens the channels, where it subsamples by 2 and
zero-pads the new channels. That shortcut has no parameters, which is what Table 5's counts
require; it also keeps every parameter inside ``F``, so interpolation (Fig. 5) copies whole
blocks and nothing else. ResNet has widths 16-32-64, Wide ResNet 32-64-128; with these
choices the trainable parameter counts equal Table 5 for every model and dataset.
"""

import keras
from keras import ops

from ml_resnet_tf.nets import odenet, primitives
from ml_resnet_tf.nets.registry import Family, NetSpec, build_net, register_family


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class ResidualBlock(odenet.ODEBlock):
    """Pre-activation residual block with an explicit step size (Eq. 2); arguments as ``ODEBlock``."""

    def build_branch(self, input_shape):
        if self.in_channels > self.filters:
            raise ValueError(
                f"{self.name}: input has {self.in_channels} channels, more than filters={self.filters}; "
                "a parameter-free shortcut can only zero-pad, not project")
        self.build_module(input_shape)

    def build_module(self, input_shape):
        """BN -> ReLU -> conv -> BN -> ReLU -> conv, for an input of ``input_shape``."""
        self.bn1 = primitives.batch_norm("bn1", self.synchronized)
        self.conv1 = primitives.conv3x3(self.filters, "conv1", self.kernel_regularizer, self.strides)
        self.bn2 = primitives.batch_norm("bn2", self.synchronized)
        self.conv2 = primitives.conv3x3(self.filters, "conv2", self.kernel_regularizer)
        self.bn1.build(input_shape)
        self.conv1.build(input_shape)
        mid_shape = self.conv1.compute_output_shape(input_shape)
        self.bn2.build(mid_shape)
        self.conv2.build(mid_shape)

    def residual(self, x, training=None):
        x = self.conv1(ops.relu(self.bn1(x, training=training)))
        return self.conv2(ops.relu(self.bn2(x, training=training)))

    @classmethod
    def from_config(cls, config):
        """Also reads blocks saved by version 0.1, which kept their place only in their name, stageS_blockB."""
        if "stage" not in config:
            stage, index = config["name"].removeprefix("stage").split("_block")
            config = {**config, "stage": int(stage), "index": int(index)}
        return cls(**config)

    def zero_branch(self):
        """Zero last kernel: ``F = 0`` at first, yet every parameter gets a gradient once it moves."""
        self.conv2.kernel.assign(ops.zeros(self.conv2.kernel.shape, self.conv2.kernel.dtype))

    def without_branch(self):
        return odenet.Shortcut(self.filters, self.strides, name=f"{self.name}_shortcut") if self.changes_shape else None

    def flops(self, in_shape, out_shape):
        (h, w, c), (ho, wo, co) = in_shape[1:], out_shape[1:]
        return (3 * h * w * c + primitives.conv_flops(ho, wo, 3, c, co)        # bn1, relu, conv1
                + 3 * ho * wo * co + primitives.conv_flops(ho, wo, 3, co, co)  # bn2, relu, conv2
                + 2 * ho * wo * co)                                        # shortcut + h * F

    def compute_output_shape(self, input_shape):
        height, width = input_shape[1:3]
        if self.strides == 2:
            height, width = [None if d is None else (d + 1) // 2 for d in (height, width)]
        return (input_shape[0], height, width, self.filters)


DEPTHS = (14, 20, 32, 44, 50, 56, 110, 122)  # Table 5's and Fig. 3's
register_family(Family("resnet", ResidualBlock, (16, 32, 64),
                       {f"resnet{d}": ((d - 2) // 6,) * 3 for d in DEPTHS},
                       description="pre-activation ResNet, forward Euler (Eq. 2)"))
register_family(Family("wresnet", ResidualBlock, (32, 64, 128),
                       {f"wresnet{d}": ((d - 2) // 6,) * 3 for d in (14, 32, 50, 122)},
                       description="Wide ResNet 32-64-128 (Section 5.1)"))


# The public API's keyword builder (``from ml_resnet_tf import build_resnet``): every argument has a default, and
# its signature stays as users call it; ``build_net`` takes the spec.
def build_resnet(blocks_per_stage=(2, 2, 2), base_width=16, step_size=1.0, num_classes=10,  # noqa: PLR0913
                 input_shape=(32, 32, 3), weight_decay=0.0, name=None, sync_batch_norm=False, stochastic_depth=1.0):
    """A ResNet of any blocks per stage and stage widths ``base_width * (1, 2, 4)`` (the Wide
    ResNet family at base width 32); ``registry.build_net`` does the building."""
    spec = NetSpec("wresnet" if base_width == 32 else "resnet", blocks_per_stage,
                   tuple(base_width * widen for widen in (1, 2, 4)), step_size, stochastic_depth)
    return build_net(spec, num_classes, input_shape, weight_decay, sync_batch_norm, name=name)
