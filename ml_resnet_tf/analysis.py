"""Measurements of trained models from the dynamical-systems view (Sections 3.2-3.3).

Every measurement runs in inference mode (batch norm uses its moving statistics),
as the paper's figures do ("the norms are evaluated at test time").
"""

import numpy as np
from keras import ops

from ml_resnet_tf.layers import ResidualBlock


def _batches(images, batch_size):
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def compare_models(reference, other, images, batch_size=500):
    """How much ``other`` computes a different function from ``reference`` on ``images``
    (an array, or a dataset of images or (images, labels) batches).

    Returns a dict with
      * ``top1_agreement``: fraction of images whose predicted class is the same;
      * ``relative_logit_change``: ``||L_other - L_ref||_F / ||L_ref||_F`` over all
        logits, the quantity that must shrink with ``h`` under interpolation.
    """
    return logit_agreement(reference.predict(images, batch_size=batch_size, verbose=0),
                           other.predict(images, batch_size=batch_size, verbose=0))


def logit_agreement(reference_logits, other_logits):
    """``compare_models`` on logits already computed."""
    return {
        "top1_agreement": float(np.mean(reference_logits.argmax(-1) == other_logits.argmax(-1))),
        "relative_logit_change": float(np.linalg.norm(other_logits - reference_logits)
                                       / np.linalg.norm(reference_logits)),
    }


def _example_norms(x):
    """Per-example L2 norm over all of height x width x channels."""
    flat = ops.reshape(x, (ops.shape(x)[0], -1))
    return ops.convert_to_numpy(ops.sqrt(ops.sum(ops.square(flat), axis=-1)))


def residual_norms(model, images, batch_size=500):
    """Per-block ``||Y_j||`` and ``||G(Y_j)||`` (Eq. 5, Fig. 4), averaged over examples.

    For block ``j`` with input ``Y_j``, ``G(Y_j) = h * F(Y_j)`` is the residual
    branch as the block adds it to its shortcut. For each example we take the L2
    (Frobenius) norm of the tensor over all its height x width x channels entries,
    then the mean over ``images``. ``||F(Y_j)|| = ||G(Y_j)|| / h`` (Fig. 7).

    Returns one dict per block, in order: ``block`` (its name), ``step_size``,
    ``input_norm`` and ``residual_norm``.
    """
    sums = {}
    for batch in _batches(images, batch_size):
        x = ops.convert_to_tensor(batch)
        for layer in model.layers:
            if isinstance(layer, ResidualBlock):
                g = layer.step_size * layer.residual(x, training=False)
                totals = sums.setdefault(layer.name, [layer.step_size, 0.0, 0.0])
                totals[1] += _example_norms(x).sum()
                totals[2] += _example_norms(g).sum()
                x = layer.shortcut(x) + g
            else:
                x = layer(x, training=False)
    n = len(images)
    return [{"block": name, "step_size": h, "input_norm": float(y / n), "residual_norm": float(g / n)}
            for name, (h, y, g) in sums.items()]
