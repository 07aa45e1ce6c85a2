"""The lesion study of Section 3.3 on any family: test error after deleting one block, random sets
of blocks, or shuffling blocks (``transforms.lesion`` makes the lesioned nets), and Eq. 8's check
that deleting block ``j`` changes the feature map after it by exactly ``G(Y_j)``."""

import keras
import numpy as np
from keras import ops

from ml_resnet_tf.analysis import probes
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.transforms.lesion import remove_blocks, reorder_blocks, shuffled_order

EQ8_IMAGES = 500  # Eq. 8 holds per image, so a few hundred show it at a fraction of the cost


def single_block_errors(model: keras.Model, images: np.ndarray, labels) -> list[dict]:
    """Test error after deleting each block alone, in the order of the blocks."""
    return [{"block": block.name, "downsampling": block.changes_shape,
             "test_error": probes.error_rate(remove_blocks(model, [block.name]), images, labels)}
            for block in odenet.blocks(model)]


def random_deletion_errors(model: keras.Model, images: np.ndarray, labels, draws: int, rng: np.random.Generator,
                           max_removed: int = 0) -> list[dict]:
    """Test error after deleting ``k`` random shape-keeping blocks, ``k = 1 ... max_removed``
    (0: all of them), ``draws`` times each. Returns one dict per ``k`` with every draw's error."""
    candidates = [b.name for b in odenet.blocks(model) if not b.changes_shape]
    top = min(max_removed or len(candidates), len(candidates))
    return [{"removed": k, "test_errors": [
        probes.error_rate(remove_blocks(model, rng.choice(candidates, k, replace=False)), images, labels)
        for _ in range(draws)]} for k in range(1, top + 1)]


def shuffle_errors(model: keras.Model, images: np.ndarray, labels, draws: int, rng: np.random.Generator) -> list[dict]:
    """Test error after shuffling the blocks of each stage alone, then of all stages at once."""
    choices = [[s] for s in range(1, len(odenet.stages(model)) + 1)] + [None]
    return [{"stages": "all" if stages is None else stages[0], "test_errors": [
        probes.error_rate(reorder_blocks(model, shuffled_order(model, rng, stages)), images, labels)
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
    after = probes.features(model, images, position + 1)  # Y_{j+1}
    lesioned = probes.features(remove_blocks(model, [block_name]), images,
                                 position + (1 if block.changes_shape else 0))
    residual = ops.convert_to_numpy(block.step(probes.state_after(model, images, position), training=False)[1])
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
        "test_error": probes.error_rate(model, images, labels),
        "single_block": single_block_errors(model, images, labels),
        "random_deletions": random_deletion_errors(model, images, labels, draws, rng, max_removed),
        "shuffles": shuffle_errors(model, images, labels, draws, rng),
        "eq8": [eq8_check(model, block.name, images[:EQ8_IMAGES]) for block in blocks],
    }
