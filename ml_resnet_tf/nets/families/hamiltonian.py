"""The Hamiltonian reversible net (Chang et al., AAAI 2018; notes §1.3, §1.6-1.7): a Verlet step on
the two channel halves ``(Y, Z)`` of the state,

    Y_{j+1} = Y_j + h F(Z_j),        Z_{j+1} = Z_j - h G(Y_{j+1}),

with ``F = K_1^T ReLU(BN(K_1 BN(Z)))`` and ``G`` alike with its own ``K_2``: one 3x3 kernel per branch,
used as the convolution and (tied) as its transpose. Its inverse is ``Z_j = Z_{j+1} + h G(Y_{j+1})``,
then ``Y_j = Y_{j+1} - h F(Z_j)``.

Choices (notes §8 item 4), against ``changebo/revnet-public`` @``ham1122``:

* ``pre`` is BN, as in ``ham1122``, the branch whose configs include hamiltonian-74/218/1202; it is
  skipped in ``F`` of the net's first block, whose input the stem has just normalised.
* ``h`` is explicit (1 in the presets, as ``config.h``), not absorbed into BN's gamma, so interpolation
  can halve it.
* ``G``'s batch norm is trained (``ham1122``'s manual-gradient mode never trains it, a defect, §1.2).
* No weight-smoothness term: it has no effect in the reference code (§1.8).
* Stem conv3x3 -> BN -> ReLU at width 32; the first block of stages 2 and 3 runs at the old width,
  then pools and pads each half (``reversible.ReversibleBlock.transition``); head as every family's.

With these the trainable parameter counts are the notes' table exactly (hamiltonian74: 432,010 on
CIFAR-10, 442,180 on CIFAR-100; ``tests/test_reversible.py`` pins all five). Depth counts each
convolution and each transposed convolution: ``4 * blocks + 2``.

Refinement: both couplings are forward steps of length ``h`` of a split ODE, so halving ``h`` and
copying ``F`` and ``G`` into the new block discretises the same dynamics at half the step (O(h)
change), as for ResNet.
"""

import keras

from ml_resnet_tf.nets.branches import SymmetricBranch, normalized_stem
from ml_resnet_tf.nets.coupling import Coupling
from ml_resnet_tf.nets.registry import Family, register_family
from ml_resnet_tf.nets.reversible import ReversibleBlock


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class HamiltonianBlock(ReversibleBlock):
    """One Verlet step on the channel halves; arguments as ``ODEBlock``."""

    def build_branch(self, input_shape):
        if self.in_channels % 2 or self.filters % 2 or self.in_channels > self.filters:
            raise ValueError(f"{self.name}: the Hamiltonian splits channels in halves and only pads them: "
                             f"got {self.in_channels} -> {self.filters} channels")
        half = tuple(input_shape[:-1]) + (self.in_channels // 2,)
        first = self.stage == 1 and self.index == 1
        self.f = SymmetricBranch(half[-1], pre_norm=not first, regularizer=self.kernel_regularizer,
                                 synchronized=self.synchronized, name="f")
        self.g = SymmetricBranch(half[-1], regularizer=self.kernel_regularizer, synchronized=self.synchronized,
                                 name="g")
        self.f.build(half)
        self.g.build(half)

    def couplings(self):
        return [Coupling(0, 1, self.f, self.step_size), Coupling(1, 0, self.g, -self.step_size)]


_SMALL, _WIDE = (32, 64, 112), (32, 64, 128)
register_family(Family(
    "hamiltonian", HamiltonianBlock, _SMALL,
    {"hamiltonian38": ((3, 3, 3), _SMALL), "hamiltonian74": ((6, 6, 6), _SMALL),
     "hamiltonian110": ((9, 9, 9), _WIDE), "hamiltonian218": ((18, 18, 18), _WIDE),
     "hamiltonian1202": ((100, 100, 100), _WIDE)},
    layers_per_block=4, stem=normalized_stem, reversible=True,
    description="Hamiltonian reversible net, Verlet step on channel halves (Chang et al. 2018)"))
