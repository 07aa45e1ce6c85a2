"""ResNet and Wide ResNet builders (Section 5.1, Table 5).

A model is a plain chain of layers in a ``keras.Sequential``: a bias-free 3x3
stem convolution, three stages of :class:`ResidualBlock` of widths
``base_width * (1, 2, 4)``, then BN -> ReLU -> global average pooling -> dense.
The first block of stages 2 and 3 halves the resolution. Because the model is a
chain, interpolation, lesioning and the analyses can rebuild or walk it layer by
layer without reparsing a functional graph.

With these choices the trainable parameter counts equal Table 5 for every model
and dataset.
"""

import re

import keras

from ml_resnet_tf.layers import BN_EPSILON, BN_MOMENTUM, ResidualBlock

STAGE_WIDTHS = (1, 2, 4)
_BLOCK_NAME = re.compile(r"^stage(\d+)_block(\d+)$")
_MODEL_NAME = re.compile(r"^(w?)resnet(\d+)$")
WIDTHS = {"": 16, "w": 32}  # ResNet 16-32-64, Wide ResNet 32-64-128 (Section 5.1).


def block_name(stage, index):
    """``stage2_block3``: 1-based stage and block index, as in ``model.summary()``."""
    return f"stage{stage}_block{index}"


def kernel_regularizer(weight_decay):
    """Coupled weight decay: adds ``weight_decay * w`` to each kernel's gradient.

    Keras' L2(l) penalizes ``l * sum(w**2)``, so l = weight_decay / 2. This is the
    TensorFlow idiom ``weight_decay * tf.nn.l2_loss(w)`` of the paper's era, which,
    unlike the decoupled ``weight_decay`` of Keras optimizers, passes through the
    momentum buffer.
    """
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def build_resnet(blocks_per_stage=(2, 2, 2), base_width=16, step_size=1.0, num_classes=10,
                 input_shape=(32, 32, 3), weight_decay=0.0, name="resnet", sync_batch_norm=False):
    """Builds a pre-activation ResNet with explicit step size ``h`` (Eq. 2).

    Args:
      blocks_per_stage: residual blocks in each stage, e.g. (2, 2, 2) for ResNet-14.
      base_width: channels of the stem and the first stage; stages widen 1x, 2x, 4x.
      step_size: ``h`` of every block.
      num_classes: classifier outputs (logits).
      input_shape: (height, width, channels) of one image.
      weight_decay: coupled L2 coefficient on conv and dense kernels (0 for none).
      name: the model's name.
      sync_batch_norm: batch-norm statistics over all replicas of a ``tf.distribute`` strategy.

    The classifier computes in float32 under a mixed-precision policy, so that the logits and
    the loss keep full precision.
    """
    blocks_per_stage = tuple(int(n) for n in blocks_per_stage)
    if not blocks_per_stage or min(blocks_per_stage) < 1:
        raise ValueError(f"every stage needs at least one block, got {blocks_per_stage}")
    if len(blocks_per_stage) > len(STAGE_WIDTHS):
        raise ValueError(f"at most {len(STAGE_WIDTHS)} stages, got {blocks_per_stage}")
    regularizer = kernel_regularizer(weight_decay)
    layers = [
        keras.Input(input_shape),
        keras.layers.Conv2D(base_width, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                            kernel_regularizer=regularizer, name="stem_conv"),
    ]
    for stage, (blocks, widen) in enumerate(zip(blocks_per_stage, STAGE_WIDTHS), start=1):
        for index in range(1, blocks + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            layers.append(ResidualBlock(base_width * widen, strides=strides, step_size=step_size,
                                        kernel_regularizer=regularizer, synchronized=sync_batch_norm,
                                        name=block_name(stage, index)))
    layers += [
        keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=sync_batch_norm,
                                        name="final_bn"),
        keras.layers.ReLU(name="final_relu"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(num_classes, kernel_regularizer=regularizer, dtype="float32", name="classifier"),
    ]
    return keras.Sequential(layers, name=name)


def parse_model_name(name):
    """``resnet50`` -> (blocks_per_stage, base_width); depth 6n+2 gives n blocks per stage.

    Raises ValueError with the accepted forms for anything else.
    """
    match = _MODEL_NAME.match(name)
    depth = int(match.group(2)) if match else 0
    if not match or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"unknown model {name!r}: use resnet{{6n+2}} or wresnet{{6n+2}} with n >= 1, "
            "e.g. resnet14, resnet50, resnet110, wresnet32")
    n = (depth - 2) // 6
    return (n, n, n), WIDTHS[match.group(1)]


def build_model(name, num_classes=10, input_shape=(32, 32, 3), step_size=1.0, weight_decay=0.0):
    """Builds a model by its paper name: ``resnet14/32/50/122``, ``wresnet14/32/50/122``,
    or any ``resnet{6n+2}`` / ``wresnet{6n+2}`` such as ``resnet110`` (18-18-18)."""
    blocks_per_stage, base_width = parse_model_name(name)
    return build_resnet(blocks_per_stage, base_width=base_width, step_size=step_size,
                        num_classes=num_classes, input_shape=input_shape,
                        weight_decay=weight_decay, name=name)


def stages(model):
    """The model's residual blocks grouped by stage, in order: ``[[b11, b12], [b21, ...], ...]``."""
    grouped = {}
    for layer in model.layers:
        if isinstance(layer, ResidualBlock):
            match = _BLOCK_NAME.match(layer.name)
            if not match:
                raise ValueError(f"residual block {layer.name!r} is not named stageS_blockB")
            grouped.setdefault(int(match.group(1)), []).append(layer)
    return [grouped[s] for s in sorted(grouped)]


def blocks_per_stage(model):
    """``(2, 2, 2)`` for ResNet-14."""
    return tuple(len(blocks) for blocks in stages(model))


def step_size(model):
    """The explicit step size ``h`` shared by the model's blocks."""
    sizes = {block.step_size for blocks in stages(model) for block in blocks}
    if len(sizes) != 1:
        raise ValueError(f"{model.name} has blocks with different step sizes {sorted(sizes)}")
    return sizes.pop()


def format_blocks(blocks):
    """``(2, 2, 2)`` -> ``'2-2-2'``, the paper's notation."""
    return "-".join(str(n) for n in blocks)


def compile_model(model, schedule, momentum=0.9, start_step=0, jit_compile="auto", steps_per_execution=1):
    """Compiles ``model`` with a fresh SGD optimizer whose step counter starts at ``start_step``.

    Under a ``mixed_float16`` policy Keras wraps the optimizer in a LossScaleOptimizer itself.
    """
    optimizer = keras.optimizers.SGD(schedule, momentum=momentum)
    model.compile(optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile={"true": True, "false": False}.get(jit_compile, jit_compile),
                  steps_per_execution=steps_per_execution)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(start_step)
    return model
