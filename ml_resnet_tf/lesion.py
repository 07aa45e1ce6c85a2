"""Lesion studies (Section 3.3, after Veit et al. 2016): remove or reorder blocks at test time.

A lesioned model is a real ``keras.Sequential`` built from the trained model's own
layers, without the removed blocks or with the blocks in another order: no masks,
no flags inside the layers. It shares those layers, and so their weights, with the
trained model (nothing is copied), and it can be evaluated, summarized or saved
like any other model.

Deleting a block that keeps the shape leaves it out, so the state passes unchanged. A
downsampling block (the first of stages 2 and 3) cannot be left out, because the
blocks after it expect its output's resolution and channels. Deleting it removes
its branch and keeps its shortcut, ``Y_{j+1} = P(Y_j)`` (the block's own
``without_branch``: a parameter-free :class:`~ml_resnet_tf.odenet.Shortcut` for a ResNet).
For a forward-Euler family the feature map after the deleted block then changes by
exactly ``G(Y_j) = h * F(Y_j)``, which is Eq. 8; for a two-step family (LM-ResNet) it also
loses the ``k (u_{n-1} - u_n)`` term, which ``eq8_check`` reports as a mismatch. A reversible
family's ``G`` is the whole change its step makes to ``Y`` (``reversible.ReversibleBlock.step``),
so there Eq. 8 holds by construction and the check tests the bookkeeping.
Lesions work on every family through the ``odenet.ODEBlock`` interface.
Random deletions and shuffles draw only blocks that keep the shape, so that they
measure what Eq. 8 predicts small, not the loss of a stage's entry.
"""

import keras
import numpy as np
from keras import ops

from ml_resnet_tf import analysis, odenet

EQ8_IMAGES = 500  # Eq. 8 holds per image, so a few hundred show it at a fraction of the cost


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


def single_block_errors(model: keras.Model, images: np.ndarray, labels) -> list[dict]:
    """Test error after deleting each block alone, in the order of the blocks."""
    return [{"block": block.name, "downsampling": block.changes_shape,
             "test_error": analysis.error_rate(remove_blocks(model, [block.name]), images, labels)}
            for block in odenet.blocks(model)]


def random_deletion_errors(model: keras.Model, images: np.ndarray, labels, draws: int, rng: np.random.Generator,
                           max_removed: int = 0) -> list[dict]:
    """Test error after deleting ``k`` random shape-keeping blocks, ``k = 1 ... max_removed``
    (0: all of them), ``draws`` times each. Returns one dict per ``k`` with every draw's error."""
    candidates = [b.name for b in odenet.blocks(model) if not b.changes_shape]
    top = min(max_removed or len(candidates), len(candidates))
    return [{"removed": k, "test_errors": [
        analysis.error_rate(remove_blocks(model, rng.choice(candidates, k, replace=False)), images, labels)
        for _ in range(draws)]} for k in range(1, top + 1)]


def shuffle_errors(model: keras.Model, images: np.ndarray, labels, draws: int, rng: np.random.Generator) -> list[dict]:
    """Test error after shuffling the blocks of each stage alone, then of all stages at once."""
    choices = [[s] for s in range(1, len(odenet.stages(model)) + 1)] + [None]
    return [{"stages": "all" if stages is None else stages[0], "test_errors": [
        analysis.error_rate(reorder_blocks(model, shuffled_order(model, rng, stages)), images, labels)
        for _ in range(draws)]} for stages in choices]


def eq8_check(model: keras.Model, block_name: str, images: np.ndarray) -> dict:
    """Eq. 8 measured: deleting block ``j`` changes the feature map after it by ``G(Y_j)``.

    Runs ``model`` and ``remove_blocks(model, [block_name])`` up to the point where block
    ``j`` ends, and compares their difference with ``G(Y_j) = h * F(Y_j)`` from the block.
    Returns the largest absolute mismatch, the mismatch relative to ``||G||``, and
    ``||G(Y_j)|| / ||Y_{j+1}||``: how much of the feature map the deletion changes.
    """
    position = [layer.name for layer in model.layers].index(block_name)
    block = model.layers[position]
    after = analysis.features(model, images, position + 1)  # Y_{j+1}
    lesioned = analysis.features(remove_blocks(model, [block_name]), images,
                                 position + (1 if block.changes_shape else 0))
    residual = ops.convert_to_numpy(block.step(analysis.state_after(model, images, position), training=False)[1])
    mismatch = (after - lesioned) - residual
    return {"block": block_name,
            "max_abs_error": float(np.abs(mismatch).max()),
            "relative_error": float(np.linalg.norm(mismatch) / np.linalg.norm(residual)),
            "relative_change": float(np.linalg.norm(residual) / np.linalg.norm(after))}


def lesion_study(model: keras.Model, images: np.ndarray, labels, draws: int = 5, seed: int = 0,
                 max_removed: int = 0) -> dict:
    """Every lesion of Section 3.3 on one trained model, as one JSON-ready dict."""
    rng = np.random.default_rng(seed)
    blocks = odenet.blocks(model)
    return {
        "model": model.name,
        "blocks_per_stage": list(odenet.blocks_per_stage(model)),
        "num_images": int(len(images)),
        "draws": draws,
        "seed": seed,
        "test_error": analysis.error_rate(model, images, labels),
        "single_block": single_block_errors(model, images, labels),
        "random_deletions": random_deletion_errors(model, images, labels, draws, rng, max_removed),
        "shuffles": shuffle_errors(model, images, labels, draws, rng),
        "eq8": [eq8_check(model, block.name, images[:EQ8_IMAGES]) for block in blocks],
    }
