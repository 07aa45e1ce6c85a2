"""Interpolation: double the blocks of every stage and halve the step size (Section 4.1).

Both the old and the new model are forward-Euler discretizations of the same ODE
(Eq. 4): the new one takes two steps of ``h/2`` where the old one took one step of
``h``. Copying each block's parameters to the block inserted after it therefore
gives the deeper model almost the same function, a warm start for the next cycle.

Which old block each new block copies (Fig. 5 and Appendix B), per stage of ``n``
old blocks, 1-based:

* old block ``i`` becomes new block ``2i - 1``;
* the block inserted after it, ``2i``, copies old block ``i``;
* except new block 2, which copies old block 2: a stage's first block may change
  the resolution and the channels, so its parameters have other shapes
  (Appendix B, "block 2' is copied from block 3'").

A stage of a single block has no block 2 to copy (Appendix B is silent). Our rule:

* if its block keeps the shape (stage 1, whose input already has its width),
  new block 2 copies it, which is Fig. 5's own rule;
* otherwise new block 2 starts as the identity map: fresh initial parameters
  with the last convolution's kernel set to zero, so ``F = 0`` at first yet
  every parameter still receives a gradient once that kernel moves. The new
  model then differs from the old one only in that the downsampling block's
  residual is scaled by ``h/2`` instead of ``h``.

Stem, final batch norm and classifier are copied; all weights are copied,
batch-norm moving statistics included, and the input model is not modified.
"""

import re

import keras
from keras import ops

from ml_resnet_tf.models import block_name, stages, step_size

IDENTITY = "identity"
_DEPTH_NAME = re.compile(r"^(w?resnet)\d+$")


def interpolation_sources(num_blocks, first_keeps_shape):
    """For one stage, the source of each new block: an old block's 1-based index, or IDENTITY.

    >>> interpolation_sources(3, first_keeps_shape=False)
    [1, 2, 2, 2, 3, 3]
    """
    sources = []
    for old in range(1, num_blocks + 1):
        if old > 1:
            inserted = old
        elif num_blocks > 1:
            inserted = 2
        else:
            inserted = 1 if first_keeps_shape else IDENTITY
        sources += [old, inserted]
    return sources


def _clone(layer, **overrides):
    return layer.__class__.from_config({**layer.get_config(), **overrides})


def _renamed(model, blocks):
    """``resnet14`` -> ``resnet26``: a paper-style name follows the depth 2 * blocks + 2."""
    match = _DEPTH_NAME.match(model.name)
    return f"{match.group(1)}{2 * sum(blocks) + 2}" if match else model.name


def interpolate(model):
    """Returns a new model with twice the blocks per stage and half the step size.

    Works for any block counts, uneven stages included, on models from the
    builders or reloaded from ``.keras``. See the module docstring for which
    block each new block copies.
    """
    old_stages = stages(model)
    if not old_stages:
        raise ValueError(f"{model.name} has no residual blocks to interpolate")
    first, last = model.layers.index(old_stages[0][0]), model.layers.index(old_stages[-1][-1])
    new_step = step_size(model) / 2
    pairs = [(_clone(layer), layer) for layer in model.layers[:first]]
    for stage, old_blocks in enumerate(old_stages, start=1):
        head = old_blocks[0]
        for index, source in enumerate(
                interpolation_sources(len(old_blocks), not head.changes_shape), start=1):
            template = head if source == IDENTITY else old_blocks[source - 1]
            strides = template.strides if index == 1 else 1
            block = _clone(template, name=block_name(stage, index), step_size=new_step, strides=strides)
            pairs.append((block, None if source == IDENTITY else template))
    pairs += [(_clone(layer), layer) for layer in model.layers[last + 1:]]
    new_blocks = tuple(2 * len(blocks) for blocks in old_stages)
    new_model = keras.Sequential([keras.Input(model.input_shape[1:])] + [new for new, _ in pairs],
                                 name=_renamed(model, new_blocks))
    for new, old in pairs:
        if old is not None:
            new.set_weights(old.get_weights())
        else:
            new.conv2.kernel.assign(ops.zeros(new.conv2.kernel.shape, new.conv2.kernel.dtype))
    return new_model
