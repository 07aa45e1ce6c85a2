"""Interpolation: double the blocks of every stage and halve the step size (Section 4.1).

Both the old and the new model discretize the same ODE (Eq. 4): the new one takes two
steps of ``h/2`` where the old one took one step of ``h``. Copying each block's parameters
to the block inserted after it therefore gives the deeper model almost the same function,
a warm start for the next cycle. This module is family-agnostic: it decides *which* old
block each new block comes from, and the block's own ``refine_from`` decides *how*
(``odenet.ODEBlock``; LM-ResNet's ``k``, for instance).

Which old block each new block copies (Fig. 5 and Appendix B), per stage of ``n`` old
blocks, 1-based:

* old block ``i`` becomes new block ``2i - 1``;
* the block inserted after it, ``2i``, copies old block ``i``;
* except new block 2, which copies old block 2: a stage's first block may change
  the resolution and the channels, so its parameters have other shapes
  (Appendix B, "block 2' is copied from block 3'").

A stage of a single block has no block 2 to copy (Appendix B is silent). Our rule:

* if its block keeps the shape (stage 1, whose input already has its width),
  new block 2 copies it, which is Fig. 5's own rule;
* otherwise new block 2 starts as the identity step: fresh initial parameters with the
  branch zeroed (``zero_branch``), so ``F = 0`` at first yet every parameter still receives
  a gradient once it moves. The new model then differs from the old one only in that the
  downsampling block's residual is scaled by ``h/2`` instead of ``h``.

Stem, head and every other layer are copied; all weights are copied, batch-norm moving
statistics included, and the input model is not modified. Stochastic depth's linear rule
is recomputed for the new number of blocks.

The rule above is ``copy``, the paper's, and the default. Two more (issue 15, ``RULES``):

* ``linear``: linear in time, as the authors' MATLAB toolbox (Meganet) prolongs its weights.
  Old block ``i`` sits at time ``(i - 1) h``; the block inserted after it, at ``(i - 1/2) h``,
  takes the mean of its neighbours, old ``i`` and ``i + 1`` (every weight, batch-norm statistics
  included). Where a neighbour is missing (after the last block) or has other shapes (a
  downsampling first block), it takes the one neighbour there is, as ``copy`` does.
* ``zero``: function-preserving, as Net2Net's deeper operator (Chen et al. 2016). Every inserted
  block starts with a zero branch, and **h is kept, not halved**: halving it would halve every
  copied step and change the function, so the grown net integrates twice as far in time instead.
  The result computes exactly what the old net did, in training and inference mode, for the
  families whose ``zero_branch`` is exactly zero and whose zero step leaves the state as it is
  (resnet, wresnet: the branch's last kernel is zeroed). For the others ``zero`` is a near-zero
  start, not an exact one: a reversible branch keeps a small gain (``branches.ZERO_GAIN``) so
  that its tied kernel still learns, and the two-step schemes (lm_resnet, midpoint, leapfrog)
  carry the previous state, which an inserted step shifts (``tests/test_interpolation.py``).
"""

import dataclasses

import keras

from ml_resnet_tf.nets import odenet
from ml_resnet_tf.nets.registry import NetSpec

IDENTITY = "identity"
RULES = ("copy", "linear", "zero")


def interpolation_sources(num_blocks: int, first_keeps_shape: bool) -> list:
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


def _rule_sources(num_blocks: int, first_keeps_shape: bool, rule: str) -> list:
    """For one stage and ``rule``, each new block's sources: old 1-based indices whose weights it
    takes (their mean where there are two); an empty tuple starts it as the identity step."""
    sources = []
    for i, inserted in zip(range(1, num_blocks + 1),
                           interpolation_sources(num_blocks, first_keeps_shape)[1::2]):
        if rule == "zero" or inserted == IDENTITY:
            sources += [(i,), ()]
        elif rule == "linear" and i < num_blocks and (i > 1 or first_keeps_shape):
            sources += [(i,), (i, i + 1)]
        else:
            sources += [(i,), (inserted,)]
    return sources


def _refine(block, old_blocks):
    """``block`` from the mean of ``old_blocks`` (each through the family's ``refine_from``), or as
    the identity step where there are none. Integer variables (seed states) come from the first."""
    if len(old_blocks) < 2:
        block.refine_from(old_blocks[0] if old_blocks else None)
        return
    weights = []
    for old in old_blocks:
        block.refine_from(old)
        weights.append(block.get_weights())
    block.set_weights([sum(ws) / len(ws) if ws[0].dtype.kind == "f" else ws[0] for ws in zip(*weights)])


def interpolate(model: odenet.ODENet, rule: str = "copy") -> odenet.ODENet:
    """Returns a new model with twice the blocks per stage, new blocks initialised by ``rule``
    (``RULES``), and half the step size (``zero``: the same step size).

    Works for every family and any block counts, uneven stages included, on models from the
    builders or reloaded from ``.keras``. See the module docstring for the rules.
    """
    if rule not in RULES:
        raise ValueError(f"unknown interpolation rule {rule!r}: choose from {', '.join(RULES)}")
    old_stages = odenet.stages(model)
    if not old_stages:
        raise ValueError(f"{model.name} has no blocks to interpolate")
    old_spec = NetSpec.from_model(model)
    h = odenet.step_size(model)
    spec = dataclasses.replace(old_spec, blocks_per_stage=tuple(2 * len(s) for s in old_stages),
                               step_size=h if rule == "zero" else h / 2)
    survival = iter(odenet.survival_rates(sum(spec.blocks_per_stage), spec.stochastic_depth))
    first, last = model.layers.index(old_stages[0][0]), model.layers.index(old_stages[-1][-1])
    pairs = [(_clone(layer), layer) for layer in model.layers[:first]]
    for stage, old_blocks in enumerate(old_stages, start=1):
        head = old_blocks[0]
        for index, sources in enumerate(_rule_sources(len(old_blocks), not head.changes_shape, rule), start=1):
            template = old_blocks[sources[0] - 1] if sources else head
            block = _clone(template, name=f"stage{stage}_block{index}", step_size=spec.step_size,
                           strides=template.strides if index == 1 else 1, stage=stage, index=index,
                           survival=next(survival))
            pairs.append((block, [old_blocks[i - 1] for i in sources]))
    pairs += [(_clone(layer), layer) for layer in model.layers[last + 1:]]
    name = spec.name if model.name == old_spec.name else model.name
    new_model = odenet.ODENet([keras.Input(model.input_shape[1:])] + [new for new, _ in pairs],
                              spec=spec.to_config(), name=name)
    for new, old in pairs:
        if isinstance(new, odenet.ODEBlock):
            _refine(new, old)
        else:
            new.set_weights(old.get_weights())
    return new_model


def reestimate_batch_norm(model: odenet.ODENet, images, batch_size: int) -> None:
    """Passes ``images`` (standardized training images) forward in training mode, ``batch_size`` at a
    time: every batch norm's moving statistics move towards the grown net's own, and no weight
    changes. The copied statistics describe the old net's activations, which the new blocks change;
    ``--bn_reestimate`` and ``experiments.interpolate`` measure whether that is what costs accuracy."""
    for start in range(0, len(images), batch_size):
        model(images[start:start + batch_size], training=True)
