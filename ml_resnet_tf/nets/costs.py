"""What a multi-level run should save, in theory (Section 4.2, Table 2).

A cycle's cost is its number of steps times the cost of one step of its
architecture. Section 4.2 measures that cost by the number of residual blocks;
``flops_per_image`` counts it exactly, stem and classifier included, which is
what a block count leaves out. Either way the saving is relative to the
last-cycle model trained for the same number of steps.
"""

import keras

from ml_resnet_tf.nets import odenet, primitives


def flops_per_image(model: keras.Model) -> int:
    """Forward-pass FLOPs for one image, read off the model's layer shapes.

    Convolutions and the dense layer count 2 FLOPs per multiply-add; batch norm
    2 per element (scale and shift, inference form), ReLU 1, global average
    pooling 1, and each family's block what its ``flops`` says (for a ResNet block,
    ``shortcut + h * F`` costs 2 per output element). A training step costs a roughly
    constant multiple of this, which cancels in a saving. Layers are recognised by type,
    never by name.
    """
    total = 0
    for layer in model.layers:
        shape, out = primitives.main(layer.input).shape, primitives.main(layer.output).shape
        h, w, c = shape[1:] if len(shape) == 4 else (1, 1, shape[-1])
        if isinstance(layer, odenet.ODEBlock):
            total += layer.flops(shape, out)
        elif isinstance(layer, keras.layers.Conv2D):
            total += primitives.conv_flops(out[1], out[2], layer.kernel_size[0], c, out[3])
        elif isinstance(layer, keras.layers.BatchNormalization):
            total += 2 * h * w * c
        elif isinstance(layer, (keras.layers.ReLU, keras.layers.GlobalAveragePooling2D)):
            total += h * w * c
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * c * out[-1] + out[-1]
    return int(total)


def time_saved(cycle_steps, cycle_costs) -> float:
    """1 - (cost of the multi-level run) / (cost of the last-cycle model for the same steps).

    ``cycle_steps`` are the steps (or epochs) of each cycle and ``cycle_costs`` the
    cost of one step in each, e.g. blocks or FLOPs per image.
    """
    spent = sum(n * c for n, c in zip(cycle_steps, cycle_costs))
    return 1.0 - spent / (sum(cycle_steps) * cycle_costs[-1])


def table2(interpolations: int) -> float:
    """Section 4.2: ``k`` interpolations dividing training equally save ``1 - (2^(k+1) - 1) / (2^k (k + 1))``."""
    k = interpolations
    return time_saved([1] * (k + 1), [2 ** i for i in range(k + 1)])
