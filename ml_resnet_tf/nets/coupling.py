"""What a memory-efficient chain needs from a reversible step, below every module that uses it.

``memory`` runs consecutive invertible steps as one op and rebuilds their inputs in the backward
pass; ``odenet`` hands it a net's layers; ``reversible`` implements the steps. Declaring the contract
here, not in ``reversible``, keeps the arrows one way: ``reversible -> odenet -> memory -> coupling``.
"""

from __future__ import annotations

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class Coupling:
    """``part[target] <- scale * part[target] + carry * part[source] + coefficient * branch(part[source])``."""

    target: int
    source: int
    branch: keras.layers.Layer
    coefficient: float
    scale: float = 1.0
    carry: float = 0.0

    def scale_carry(self, parts):
        """``scale * part[target] + carry * part[source]``: the coupling without its branch."""
        update = parts[self.target] if self.scale == 1 else self.scale * parts[self.target]
        return update + self.carry * parts[self.source] if self.carry else update

    def undo(self, parts, increment):
        """``part[target]`` before the coupling, given ``increment = coefficient * branch(part[source])``."""
        rest = parts[self.target] - increment
        rest = rest - self.carry * parts[self.source] if self.carry else rest
        return rest if self.scale == 1 else rest / self.scale


class Invertible:
    """A step that a chain may recompute from its output: a state of two parts changed by couplings.

    ``reversible.ReversibleBlock`` implements it; ``memory`` uses nothing else of a block."""

    swap = False  # whether the step ends by swapping its two parts

    def couplings(self) -> list[Coupling]:
        raise NotImplementedError

    def coefficients(self, training=None) -> list:
        """Each coupling's coefficient in this call (stochastic depth may mask them)."""
        raise NotImplementedError

    def split(self, state) -> list:
        raise NotImplementedError

    def join(self, parts):
        raise NotImplementedError

    def joins_chain(self, state, chain_open: bool) -> bool:
        """Whether the step can be recomputed from its output here: ``state`` is its input when no
        chain is open."""
        raise NotImplementedError
