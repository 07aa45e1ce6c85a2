"""Lesions (Section 3.3, after Veit et al. 2016): remove or reorder blocks at test time.

The study that measures them is ``ml_resnet_tf.analysis.lesions``.

A lesioned model is a real ``keras.Sequential`` built from the trained model's own
layers, without the removed blocks or with the blocks in another order: no masks,
no flags inside the layers. It shares those layers, and so their weights, with the
trained model (nothing is copied), and it can be evaluated, summarized or saved
like any other model.

Deleting a block that keeps the shape leaves it out, so the state passes unchanged. A
downsampling block (the first of stages 2 and 3) cannot be left out, because the
blocks after it expect its output's resolution and channels. Deleting it removes
its branch and keeps its shortcut, ``Y_{j+1} = P(Y_j)`` (the block's own
``without_branch``: a parameter-free :class:`~ml_resnet_tf.nets.odenet.Shortcut` for a ResNet).
For a forward-Euler family the feature map after the deleted block then changes by
exactly ``G(Y_j) = h * F(Y_j)``, which is Eq. 8; for a two-step family (LM-ResNet) it also
loses the ``k (u_{n-1} - u_n)`` term, which ``analysis.lesions.eq8_check`` reports as a mismatch. A reversible
family's ``G`` is the whole change its step makes to ``Y`` (``reversible.ReversibleBlock.step``),
so there Eq. 8 holds by construction and the check tests the bookkeeping.
Lesions work on every family through the ``odenet.ODEBlock`` interface.
Random deletions and shuffles draw only blocks that keep the shape, so that they
measure what Eq. 8 predicts small, not the loss of a stage's entry.
"""

import keras
import numpy as np

from ml_resnet_tf.nets import odenet


def _rebuild(model, layers, suffix):
    return odenet.ODENet([keras.Input(model.input_shape[1:])] + layers, spec=model.spec, name=f"{model.name}_{suffix}")



def remove_blocks(model: keras.Model, names) -> odenet.ODENet:
    """``model`` without the blocks ``names``; a downsampling block leaves its shortcut."""
    names = set(names)
    unknown = names - {block.name for block in odenet.blocks(model)}
    if unknown:
        raise ValueError(f"{model.name} has no residual blocks named {sorted(unknown)}")
    layers = []
    for layer in model.layers:
        if layer.name not in names:
            layers.append(layer)
        elif (remainder := layer.without_branch()) is not None:
            layers.append(remainder)
    return _rebuild(model, layers, f"without_{len(names)}")


def reorder_blocks(model: keras.Model, order: list[str]) -> odenet.ODENet:
    """``model`` with its residual blocks in ``order`` (names); the other layers stay in place."""
    blocks = odenet.blocks(model)
    if sorted(order) != sorted(block.name for block in blocks):
        raise ValueError(f"order must name each of {model.name}'s {len(blocks)} blocks once")
    by_name = {block.name: block for block in blocks}
    queue = iter(order)
    layers = [by_name[next(queue)] if isinstance(layer, odenet.ODEBlock) else layer for layer in model.layers]
    return _rebuild(model, layers, "shuffled")


def shuffled_order(model: keras.Model, rng: np.random.Generator, stages=None) -> list[str]:
    """Block names with the blocks of each stage in ``stages`` (1-based; all by default) permuted
    at random. A downsampling block stays first in its stage: only there do its shapes fit."""
    order = []
    for index, stage in enumerate(odenet.stages(model), start=1):
        fixed = [b.name for b in stage if b.changes_shape]
        free = [b.name for b in stage if not b.changes_shape]
        if stages is None or index in stages:
            free = [free[i] for i in rng.permutation(len(free))]
        order += fixed + free
    return order
