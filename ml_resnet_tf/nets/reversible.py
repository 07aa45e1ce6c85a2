"""Reversible ODE blocks (Chang et al., AAAI 2018): a step made of additive couplings, so its input
can be recomputed from its output.

A reversible family's step (``families.hamiltonian``, ``midpoint``, ``leapfrog``) acts on a state
of two *parts*, either the two channel halves ``(Y, Z)`` of one tensor or the pair
``(Y_j, Y_{j-1})`` of a two-step scheme, as a short list of :class:`Coupling` s, each

    part[target] <- scale * part[target] + carry * part[source] + coefficient * branch(part[source])

optionally followed by swapping the two parts. ``branch`` is a small Keras layer and
``coefficient`` carries the step size (``h``, ``2h``, ``-h^2``). Each coupling leaves its source
unchanged, so undoing the couplings in reverse order is exact algebra (notes §1.3-1.5):

    part[target] = (part[target] - carry * part[source] - coefficient * branch(part[source])) / scale

This one description serves the forward step, :meth:`ReversibleBlock.inverse`, the lesions, and the
memory-efficient backward pass (``ml_resnet_tf.nets.memory``), which needs nothing else from a family.

A stage transition (the first block of stages 2 and 3) is not invertible: the block runs its step at
the old size, then 2x2-average-pools each part and zero-pads its channels symmetrically (notes §1.7).
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ml_resnet_tf.nets import odenet, primitives
from ml_resnet_tf.nets.coupling import Coupling, Invertible


class ReversibleBlock(odenet.ODEBlock, Invertible):
    """A reversible step (module docstring). A family sets ``two_step`` and ``swap``, builds its branch
    layers in ``build_branch`` and lists its couplings in ``couplings``; arguments as ``ODEBlock``.

    ``two_step``: the state is the pair ``(Y_j, Y_{j-1})``, and a plain tensor ``Y_0`` (the stem's
    output) is lifted to ``(Y_0, Y_0)``. Otherwise the state is one tensor whose channel halves are
    the parts.
    """

    two_step = False

    def couplings(self) -> list[Coupling]:
        raise NotImplementedError

    # -- parts ----------------------------------------------------------------------------------
    def split(self, state) -> list:
        if self.two_step:
            return list(state) if isinstance(state, (tuple, list)) else [state, state]
        return list(ops.split(state, 2, axis=-1))

    def join(self, parts):
        return tuple(parts) if self.two_step else ops.concatenate(parts, axis=-1)

    def lifts(self, state) -> bool:
        """True where this block receives a plain ``Y_0`` and makes the pair itself (not invertible)."""
        return self.two_step and not isinstance(state, (tuple, list))

    def joins_chain(self, state, chain_open: bool) -> bool:
        """Invertible inside a stage, unless it opens the chain by lifting ``Y_0`` to a pair."""
        return not self.changes_shape and (chain_open or not self.lifts(state))

    def part_width(self) -> int:
        return self.filters if self.two_step else self.filters // 2

    def transition(self, parts) -> list:
        """Pool 2x2 and pad channels symmetrically, each part (notes §1.7); identity inside a stage."""
        if not self.changes_shape:
            return list(parts)
        out = []
        for part in parts:
            if self.strides == 2:
                part = ops.average_pool(part, 2, strides=2, padding="valid")
            extra = self.part_width() - part.shape[-1]
            out.append(ops.pad(part, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]]) if extra else part)
        return out

    # -- the step -------------------------------------------------------------------------------
    def coefficients(self, training=None) -> list:
        """Each coupling's coefficient, times stochastic depth's keep mask in training (the same draw
        for every coupling of the block) or its survival probability at inference."""
        base = [c.coefficient for c in self.couplings()]
        if self.survival >= 1:
            return base
        if not training:
            return [self.survival * c for c in base]
        keep = ops.cast(keras.random.uniform((), seed=self.seed_generator) < self.survival, self.compute_dtype)
        return [keep * c for c in base]

    def advance(self, parts, coefficients, training=None) -> list:
        """The couplings (and swap) on ``parts``; no transition."""
        parts = list(parts)
        for c, coefficient in zip(self.couplings(), coefficients):
            update = c.scale_carry(parts)
            parts[c.target] = update + coefficient * c.branch(parts[c.source], training=training)
        return parts[::-1] if self.swap else parts

    def call(self, inputs, training=None):
        parts = self.advance(self.split(inputs), self.coefficients(training), training)
        return self.join(self.transition(parts))

    def skip(self, state):
        """Deleting the block: the state passes unchanged, through the transition if there is one."""
        return self.join(self.transition(self.split(state))) if self.changes_shape or self.lifts(state) else state

    def step(self, state, training=None):
        """``(next state, G)``, where ``G`` is the change the block makes to ``Y``: ``Y_{j+1}`` minus what
        deleting the block leaves. That is what a lesion removes (Eq. 8 holds by construction) and what
        the trajectory's ``||G(Y_j)||`` measures for these schemes."""
        new = self(state, training=training)
        return new, primitives.main(new) - primitives.main(self.skip(state))

    def inverse(self, outputs, training=None, coefficients=None):
        """The block's input from its output, for a block inside a stage (no transition). ``coefficients``
        default to the inference ones; pass the forward's own where stochastic depth drew a mask."""
        if self.changes_shape:
            raise ValueError(f"{self.name} pools and pads: a stage transition is not invertible")
        coefficients = self.coefficients(False) if coefficients is None else coefficients
        parts = self.split(outputs)
        parts = parts[::-1] if self.swap else parts
        for c, coefficient in reversed(list(zip(self.couplings(), coefficients))):
            parts[c.target] = c.undo(parts, coefficient * c.branch(parts[c.source], training=training))
        return self.join(parts)

    # -- bookkeeping ----------------------------------------------------------------------------
    def branches(self) -> list:
        return [c.branch for c in self.couplings()]

    def zero_branch(self):
        for branch in self.branches():
            branch.shrink()

    def without_branch(self):
        return odenet.BranchRemoved(self) if self.changes_shape else None

    def flops(self, in_shape, out_shape) -> int:
        (h, w, c), elements = in_shape[1:], math.prod(in_shape[1:])
        part = c if self.two_step else c // 2
        return sum(b.flops(h, w, part) for b in self.branches()) + 3 * elements * len(self.couplings())

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (tuple, list)) else input_shape
        h, w = shape[1:3]
        if self.strides == 2:
            h, w = (None if h is None else h // 2), (None if w is None else w // 2)
        out = (shape[0], h, w, self.filters)
        return (out, out) if self.two_step else out


def invert(blocks: list[ReversibleBlock], outputs, training=None):
    """The state before ``blocks`` (invertible ones, in order) from the state after them."""
    for block in reversed(blocks):
        outputs = block.inverse(outputs, training=training)
    return outputs


def reconstruction_errors(block_class: type, depths, x, step_size: float = 1.0, training=None) -> list[dict]:
    """Runs a stage of ``max(depths)`` fresh ``block_class`` blocks forward from ``x`` (a two-step
    family starts from the pair ``(x, x)``), and for each depth N inverts the first N blocks from
    their output. Returns per depth ``relative_error`` ``||x_rec - x|| / ||x||`` over the whole
    state and ``output_norm_ratio`` ``||Y_N|| / ||x||``. Blocks compute in the dtype policy in force."""
    blocks = [block_class(int(x.shape[-1]), step_size=step_size, stage=1, index=i + 2, name=f"block{i + 2}")
              for i in range(max(depths))]
    state = (x, x) if blocks[0].two_step else x
    outputs, current = {}, state
    for depth, block in enumerate(blocks, start=1):
        current = block(current, training=training)
        if depth in depths:
            outputs[depth] = current
    reference, rows = _flat(state), []
    for depth in sorted(depths):
        rebuilt = _flat(invert(blocks[:depth], outputs[depth], training=training))
        scale = np.linalg.norm(reference)
        rows.append({"depth": depth, "relative_error": float(np.linalg.norm(rebuilt - reference) / scale),
                     "output_norm_ratio": float(np.linalg.norm(_flat(outputs[depth])) / scale)})
    return rows


def _flat(state) -> np.ndarray:
    parts = state if isinstance(state, (tuple, list)) else [state]
    return np.concatenate([np.ravel(ops.convert_to_numpy(p)).astype("float64") for p in parts])
