"""Measurements of trained models from the dynamical-systems view (Sections 3.2-3.3).

Every measurement runs in inference mode (batch norm uses its moving statistics),
as the paper's figures do ("the norms are evaluated at test time").
"""

import keras
import numpy as np
from keras import ops

from ml_resnet_tf.nets import odenet, primitives


def _batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def compare_models(reference: keras.Model, other: keras.Model, images, batch_size: int = 500) -> dict:
    """How much ``other`` computes a different function from ``reference`` on ``images``
    (an array, or a dataset of images or (images, labels) batches).

    Returns a dict with
      * ``top1_agreement``: fraction of images whose predicted class is the same;
      * ``relative_logit_change``: ``||L_other - L_ref||_F / ||L_ref||_F`` over all
        logits, the quantity that must shrink with ``h`` under interpolation.
    """
    return logit_agreement(reference.predict(images, batch_size=batch_size, verbose=0),
                           other.predict(images, batch_size=batch_size, verbose=0))


def logit_agreement(reference_logits: np.ndarray, other_logits: np.ndarray) -> dict:
    """``compare_models`` on logits already computed."""
    return {
        "top1_agreement": float(np.mean(reference_logits.argmax(-1) == other_logits.argmax(-1))),
        "relative_logit_change": float(np.linalg.norm(other_logits - reference_logits)
                                       / np.linalg.norm(reference_logits)),
    }


def features(model: keras.Model, images: np.ndarray, num_layers: int, batch_size: int = 500) -> np.ndarray:
    """The output of ``model``'s first ``num_layers`` layers on ``images`` (inference mode), as numpy;
    for a multi-step family, ``Y_j`` of the state (``primitives.main``).

    Runs eagerly, batch by batch, so that the many models of a lesion study each cost
    one forward pass and no tracing, under any backend.
    """
    return np.concatenate([ops.convert_to_numpy(primitives.main(state_after(model, batch, num_layers)))
                           for batch in _batches(images, batch_size)])


def state_after(model: keras.Model, images, num_layers: int):
    """The whole state after ``model``'s first ``num_layers`` layers (inference mode): a tensor, or a
    multi-step family's tuple, as the next block receives it."""
    x = ops.convert_to_tensor(images)
    for layer in model.layers[:num_layers]:
        x = layer(x, training=False)
    return x


def error_rate(model: keras.Model, images: np.ndarray, labels, batch_size: int = 500) -> float:
    """Top-1 test error of ``model`` on ``images``."""
    logits = features(model, images, len(model.layers), batch_size)
    return float(np.mean(logits.argmax(-1) != np.asarray(labels)))


def _example_norms(x):
    """Per-example L2 norm over all of height x width x channels, in float32: under mixed_float16 a sum of
    squares over a feature map overflows float16's 65,504, and the gains became inf / inf = nan."""
    flat = ops.cast(ops.reshape(x, (ops.shape(x)[0], -1)), "float32")
    return ops.convert_to_numpy(ops.sqrt(ops.sum(ops.square(flat), axis=-1)))


def residual_norms(model: keras.Model, images: np.ndarray, batch_size: int = 500) -> list[dict]:
    """Per-block ``||Y_j||``, ``||G(Y_j)||`` and ``||F(Y_j)||`` (Eq. 5, Figs. 4 and 7), averaged over examples,
    and the branch gain of the ensemble view (``ml_resnet_tf.analysis.ensemble``).

    For block ``j`` with input ``Y_j``, ``G(Y_j) = h * F(Y_j)`` is the residual
    branch as the block adds it to its shortcut (at inference, so stochastic depth's
    survival scaling included). Works for every family through ``odenet.ODEBlock``. For each example we take the L2
    (Frobenius) norm of the tensor over all its height x width x channels entries,
    then the mean over ``images``; ``||F(Y_j)|| = ||G(Y_j)|| / h``.

    Returns one dict per block, in order: ``block`` (its name), ``index`` (1-based over the
    whole network), ``step_size``, ``time`` (the conceptual time ``t_{j-1} = (j - 1) h`` at
    which the forward-Euler step evaluates ``F``, Appendix C), ``input_norm`` (``||Y_j||``),
    ``residual_norm`` (``||G(Y_j)||``), ``f_norm`` (``||F(Y_j)||``), ``skip_norm`` (``||S(Y_j)||``, the
    state the block leaves with its branch removed, ``ODEBlock.skip``: ``P(Y_j)`` for forward Euler) and
    ``gain``, the per-example ratio ``||G(Y_j)|| / ||S(Y_j)||`` averaged over ``images`` (the
    ensemble view's ``a_j``, notes §5). Every family's ``G`` is ``Y_{j+1} - S(Y_j)``, so the gain means
    the same in all of them: how large the branch's change is against what the step keeps without it.
    """
    sums = {}
    for batch in _batches(images, batch_size):
        state = ops.convert_to_tensor(batch)
        for layer in model.layers:
            if isinstance(layer, odenet.ODEBlock):
                totals = sums.setdefault(layer.name, np.array([layer.step_size, 0.0, 0.0, 0.0, 0.0]))
                skip = _example_norms(primitives.main(layer.skip(state)))
                totals[1] += _example_norms(primitives.main(state)).sum()
                state, g = layer.step(state, training=False)
                g = _example_norms(g)
                totals[2:] += g.sum(), skip.sum(), (g / np.maximum(skip, np.finfo(skip.dtype).tiny)).sum()
            else:
                state = layer(state, training=False)
    n, time, norms = len(images), 0.0, []
    for index, (name, (h, y, g, skip, gain)) in enumerate(sums.items(), start=1):
        norms.append({"block": name, "index": index, "step_size": float(h), "time": time, "input_norm": float(y / n),
                      "residual_norm": float(g / n), "f_norm": float(g / n / h), "skip_norm": float(skip / n),
                      "gain": float(gain / n)})
        time += float(h)
    return norms


def mean_residual_norm(norms: list[dict]) -> float:
    """gamma = (1/d) sum_j ||G(Y_j)|| over the d blocks (Section 3.2, Fig. 3)."""
    return float(np.mean([block["residual_norm"] for block in norms]))
