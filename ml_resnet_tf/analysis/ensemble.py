"""The ensemble view of a residual net: its paths, their lengths, and the gradient each length carries.

Unrolled, a chain of ``n`` steps ``Y_{j+1} = S_j(Y_j) + G_j(Y_j)`` is a sum over ``2^n`` paths: at
every block a path either goes through the branch ``G`` or skips it through ``S`` (``ODEBlock.skip``:
``P(Y)`` for forward Euler, the two-step combination for LM-ResNet, the unchanged state for a
reversible step). A path's *length* is the number of branches it goes through (Veit et al. 2016,
notes §4). Every definition below uses only ``skip`` and the block's call, so it holds for every family.

* **Gain** ``a_l``: the per-example ratio ``||G_l|| / ||S_l(Y_l)||``, averaged over test images, in
  inference mode (``probes.residual_norms``; notes §5). A downsampling block's ``S`` is its shortcut,
  so it is divided by ``||P(Y)||`` as the notes ask.
* **Depth distribution** (Littwin & Wolf, notes §3): weighting a path by the product of the gains of the
  branches it takes, its length ``r`` has ``P(r) = [z^r] prod(1 + a_l z) / prod(1 + a_l)``, a
  Poisson-binomial with ``p_l = a_l / (1 + a_l)`` and mean ``sum p_l``. Computed exactly, in float64.
* **Gradient by path length** (Veit et al., notes §5): for a subset ``B`` of blocks, every block in
  ``B`` passes gradient only through its branch and every other block only through ``S``; the
  forward pass is unchanged (``stop_gradient`` on the other part). The block Jacobians are
  ``J_S + J_G``, so the gradient of the whole net is exactly the sum over all ``B`` of these
  gradients (a test checks it by enumeration). In inference mode the examples of a batch do not
  interact, so each example draws its own ``B``: one backward pass samples a whole batch of paths.
* **Batch-norm scale** (notes §5, step 2): the mean ``|gamma|`` of a block's last batch norm (BN2 of a
  pre-activation ResNet branch) and the norm of its last kernel, the weights that scale what the
  branch adds.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ml_resnet_tf.analysis import lesions, probes
from ml_resnet_tf.nets import odenet

GRADIENT_SHARE = 0.9  # the window of path lengths that carries this share of the gradient
SCALES = ("bn_gamma", "kernel_norm")  # branch_scales' keys


def depth_distribution(gains) -> np.ndarray:
    """``P(r)``, ``r = 0 ... n``: the normalised coefficients of ``prod(1 + a_l z)`` (notes §3)."""
    gains = np.asarray(gains, dtype=np.float64)
    distribution = np.ones(1)
    for p in gains / (1.0 + gains):
        distribution = np.convolve(distribution, [1.0 - p, p])
    return distribution


def depth_summary(gains) -> dict:
    """Mean, spread and short-path share of ``depth_distribution(gains)``."""
    n = len(gains)
    distribution, lengths = depth_distribution(gains), np.arange(n + 1)
    mean = float(distribution @ lengths)
    return {"num_blocks": n, "mean_depth": mean, "relative_depth": mean / n if n else 0.0,
            "std_depth": float(np.sqrt(distribution @ (lengths - mean) ** 2)),
            "short_fraction": float(distribution[lengths < n / 2].sum())}


def branch_scales(block: odenet.ODEBlock) -> dict:
    """``bn_gamma`` (mean ``|gamma|`` of the block's last batch norm) and ``kernel_norm`` (of its last
    kernel): what scales the branch's output, and what batch norm's dynamics act on."""
    norms = [layer for layer in block._flatten_layers(include_self=False)
             if isinstance(layer, keras.layers.BatchNormalization) and layer.gamma is not None]
    kernels = [v for v in block.trainable_weights if v.path.endswith("kernel")]
    scales = {}
    if norms:
        scales["bn_gamma"] = float(np.abs(ops.convert_to_numpy(norms[-1].gamma)).mean())
    if kernels:
        scales["kernel_norm"] = float(np.linalg.norm(ops.convert_to_numpy(kernels[-1])))
    return scales


def block_gains(model: keras.Model, images: np.ndarray) -> dict[str, float]:
    """``{block name: a_l}`` on ``images``."""
    return {b["block"]: b["gain"] for b in probes.residual_norms(model, images)}


# -- gradient by path length -------------------------------------------------------------------------
def masked_step(block: odenet.ODEBlock, state, through):
    """The block's next state, with gradient only through the branch where ``through`` (one 0/1 per
    example) is 1 and only through ``skip`` where it is 0; the value is the block's own."""
    new, skip = block(state, training=False), block.skip(state)

    def mix(value, kept):
        change = value - kept
        m = ops.reshape(ops.cast(through, change.dtype), (-1,) + (1,) * (len(change.shape) - 1))
        return m * (ops.stop_gradient(kept) + change) + (1.0 - m) * (kept + ops.stop_gradient(change))

    if isinstance(new, (tuple, list)):  # a multi-step state: every entry alike
        return tuple(mix(value, kept) for value, kept in zip(new, skip))
    return mix(new, skip)


def _first_block(model) -> int:
    return next(i for i, layer in enumerate(model.layers) if isinstance(layer, odenet.ODEBlock))


def _input_gradient(loss_fn, x):
    """``d loss_fn(x) / dx`` on the current backend (``keras.ops`` has no gradient, notes §7.2)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = loss_fn(x)
        return tape.gradient(loss, x)
    if backend == "jax":
        import jax

        return jax.grad(loss_fn)(x)
    import torch

    x = torch.as_tensor(x).detach().requires_grad_()
    return torch.autograd.grad(loss_fn(x), x)[0]


def path_gradient(model: keras.Model, inputs, labels, masks: np.ndarray) -> np.ndarray:
    """Per example, ``||dL/dY_1||`` (the input of the first block) along the paths ``masks`` selects:
    ``masks[b, l] = 1`` sends example ``b``'s gradient through block ``l``'s branch. ``L`` is the summed
    cross-entropy, so each example's gradient is its own; ``inputs`` are ``Y_1`` (after the stem).
    A mask of all ones and zeros in every pattern, summed, gives the full gradient."""
    first = _first_block(model)
    masks = ops.convert_to_tensor(masks, "float32")

    def loss(x):
        state, index = x, 0
        for layer in model.layers[first:]:
            if isinstance(layer, odenet.ODEBlock):
                state, index = masked_step(layer, state, masks[:, index]), index + 1
            else:
                state = layer(state, training=False)
        return ops.sum(keras.losses.sparse_categorical_crossentropy(labels, state, from_logits=True))

    return ops.convert_to_numpy(_input_gradient(loss, ops.convert_to_tensor(inputs)))


def gradient_by_length(model: keras.Model, images: np.ndarray, labels, samples: int = 1000, ks=None,
                       seed: int = 0, batch_size: int = 128) -> dict:
    """Veit et al.'s measurement (notes §5): for each path length ``k`` in ``ks`` (default ``0 ... n``),
    ``samples`` random ``k``-subsets of blocks, each on the next test image in turn; the mean and spread
    of ``||dL/dY_1||``, the total over the ``C(n, k)`` paths of that length (``share``, normalised over
    ``ks``), the peak, and the narrowest window of lengths holding ``GRADIENT_SHARE`` of it."""
    n = len(odenet.blocks(model))
    ks = list(range(n + 1)) if ks is None else sorted({int(k) for k in ks})
    if not ks or ks[0] < 0 or ks[-1] > n:
        raise ValueError(f"path lengths must lie in 0 ... {n}, got {ks}")
    rng = np.random.default_rng(seed)
    lengths = np.repeat(ks, samples)
    masks = np.zeros((len(lengths), n), np.float32)
    for row, k in enumerate(lengths):
        masks[row, rng.choice(n, k, replace=False)] = 1.0
    first = _first_block(model)
    norms = np.empty(len(lengths))
    for start in range(0, len(lengths), batch_size):
        rows = np.arange(start, min(start + batch_size, len(lengths)))
        chosen = rows % len(images)
        inputs = probes.state_after(model, images[chosen], first)
        grads = path_gradient(model, inputs, np.asarray(labels)[chosen], masks[rows])
        norms[rows] = np.sqrt((grads.reshape(len(rows), -1).astype(np.float64) ** 2).sum(-1))
    per_k = [{"k": k, "paths": float(math.comb(n, k)), "samples": samples,
              "gradient_mean": float(norms[lengths == k].mean()), "gradient_std": float(norms[lengths == k].std())}
             for k in ks]
    totals = np.array([e["paths"] * e["gradient_mean"] for e in per_k])
    shares = totals / totals.sum() if totals.sum() > 0 else np.zeros_like(totals)
    for entry, share in zip(per_k, shares):
        entry["share"] = float(share)
    low, high = _narrowest_window(shares, GRADIENT_SHARE)
    return {"num_blocks": n, "samples": samples, "seed": seed, "per_length": per_k,
            "peak_length": ks[int(np.argmax(shares))], "window": [ks[low], ks[high]],
            "window_share": float(shares[low:high + 1].sum())}


def _narrowest_window(shares: np.ndarray, target: float) -> tuple[int, int]:
    """Indices ``(low, high)`` of the shortest run of ``shares`` summing to at least ``target``."""
    best = (0, len(shares) - 1)
    for low in range(len(shares)):
        cumulative = np.cumsum(shares[low:])
        reached = np.nonzero(cumulative >= target - 1e-12)[0]
        if reached.size and reached[0] < best[1] - best[0]:
            best = (low, low + int(reached[0]))
    return best


# -- the lesion study beside it ----------------------------------------------------------------------
def _rank_correlation(x, y) -> float | None:
    """Spearman's rho (no ties expected in measured floats); None with fewer than 3 points."""
    if len(x) < 3:
        return None
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def lesion_crosscheck(model: keras.Model, gains: dict[str, float], images: np.ndarray, labels, draws: int,
                      rng: np.random.Generator) -> dict:
    """The ensemble view against the lesion study (Section 3.3) on the same images.

    * Single blocks: does a larger gain mean a larger error when the block is deleted? Spearman's rho
      between ``a_l`` and the error increase, over the blocks that keep the shape.
    * ``k`` random deletions: the ensemble view predicts the error from the share of path weight that
      survives, ``prod_{deleted} 1 / (1 + a_l)``; reported per ``k`` beside the measured error, with
      their rank correlation over ``k``.
    """
    intact = probes.error_rate(model, images, labels)
    single = lesions.single_block_errors(model, images, labels)
    for entry in single:
        entry["gain"] = gains[entry["block"]]
        entry["error_increase"] = entry["test_error"] - intact
    kept = [e for e in single if not e["downsampling"]]
    candidates = np.array([gains[b.name] for b in odenet.blocks(model) if not b.changes_shape])
    deletions = lesions.random_deletion_errors(model, images, labels, draws, rng)
    for entry in deletions:
        picks = [rng.choice(len(candidates), entry["removed"], replace=False) for _ in range(1000)]
        entry["mean_error"] = float(np.mean(entry["test_errors"]))
        entry["surviving_path_weight"] = float(np.mean([np.prod(1.0 / (1.0 + candidates[p])) for p in picks]))
    return {"test_error": intact, "single_block": single,
            "gain_vs_single_lesion_rho": _rank_correlation([e["gain"] for e in kept],
                                                           [e["error_increase"] for e in kept]),
            "random_deletions": deletions,
            "weight_vs_error_rho": _rank_correlation([-e["surviving_path_weight"] for e in deletions],
                                                     [e["mean_error"] for e in deletions])}


# -- over training -----------------------------------------------------------------------------------
def _row(epoch: int, cycle: dict, scalars: dict, at_start: bool, accuracy: float | None) -> dict:
    gains = {name: values["gain"] for name, values in scalars.items()}
    row = {"epoch": epoch, "cycle": cycle["cycle"], "step_size": cycle["step_size"], "at_start": at_start,
           "test_accuracy": accuracy,
           **depth_summary(list(gains.values())), "gains": gains, "mean_gain": float(np.mean(list(gains.values()))),
           "scales": {name: {k: values[k] for k in SCALES if k in values} for name, values in scalars.items()}}
    for key in SCALES:
        values = [s[key] for s in row["scales"].values() if key in s]
        if values:
            row[f"mean_{key}"] = float(np.mean(values))
    return row


def history(results: dict) -> list[dict]:
    """The effective depth over a run, from what the trainer logged: one row at the start of every cycle
    (before its first step: initialisation, or just after an interpolation; ``at_start``) and one at the
    end of every epoch, in time order, each with its gains, depth summary and mean scales. Epochs and
    cycles of runs that predate the gains are left out."""
    after = {change["cycle"]: change["test_accuracy_after"] for change in results["interpolations"]}
    cycles = {c["cycle"]: c for c in results["cycles"]}
    rows = [_row(c["start_epoch"], c, {name: {"gain": g} for name, g in c["gains_at_start"].items()},
                 True, after.get(c["cycle"])) for c in results["cycles"] if c["gains_at_start"]]
    for epoch in results["epochs"]:
        scalars = {name: values for name, values in epoch["block_scalars"].items() if "gain" in values}
        if scalars and epoch["cycle"] in cycles:
            rows.append(_row(epoch["epoch"], cycles[epoch["cycle"]], scalars, False, epoch["test_accuracy"]))
    return sorted(rows, key=lambda row: (row["epoch"], row["at_start"]))


def scale_correlation(rows: list[dict]) -> float | None:
    """How batch norm's scale drives the gains: Pearson's r between ``log a_l`` and
    ``log(h |gamma_l| ||W_l||)`` over every block and epoch of ``history`` (the branch's output
    scales with all three), where the trainer logged them."""
    pairs = [(row["gains"][name], row["step_size"] * s["bn_gamma"] * s["kernel_norm"])
             for row in rows for name, s in row["scales"].items() if "bn_gamma" in s and "kernel_norm" in s]
    pairs = [(g, scale) for g, scale in pairs if g > 0 and scale > 0]
    if len(pairs) < 3:
        return None
    logs = np.log(np.array(pairs))
    return float(np.corrcoef(logs[:, 0], logs[:, 1])[0, 1])
