"""The midpoint reversible net (Chang et al., AAAI 2018; notes §1.4): the two-step explicit midpoint
rule on the pair ``(Y_j, Y_{j-1})``,

    Y_{j+1} = Y_{j-1} + 2h ReLU(BN(A_j Y_j)),      A_j = [[0, K_j], [-K_j^T, 0]],

and its inverse ``Y_{j-1} = Y_{j+1} - 2h ReLU(BN(A_j Y_j))``. No author code exists; every choice is
ours (notes §8 items 1 and 3):

* ``A`` is the half-split antisymmetric form: antisymmetric for any ``K`` by construction, where
  ``K - K^T`` is so only with an exact adjoint and a square kernel, and at half the parameters.
  BN follows ``A`` over all channels (its beta is ``b``), then ReLU, as the third-party port does.
* First step: ``Y_{-1} = Y_0`` for the stem's output, so the first step is Euler with ``2h``, the
  same restart as LM-ResNet's ``u_{-1} := u_0`` and Meganet's leapfrog. It is a first-order start;
  the refinement test still shows the refined net converging to the coarse one.
* The pair crosses stage transitions: both entries are pooled and padded alike (a linear map, so
  the difference ``Y_j - Y_{j-1}`` is transformed consistently); the recursion never restarts.
* midpoint62 is 10-10-10 at widths 32-64-112. Depth counts ``K`` and ``K^T`` as two layers, as the
  Hamiltonian's ``4 * blocks + 2`` counts its two kernels twice: ``2 * blocks + 2``. It has 371,520
  convolution parameters (the notes' half-split candidate), near hamiltonian74's 425,088.

Refinement: ``2h`` halves with ``h`` (notes §6), and the pair is recomputed at the new spacing.
"""

import keras

from ml_resnet_tf.nets.branches import AntisymmetricBranch, normalized_stem
from ml_resnet_tf.nets.coupling import Coupling
from ml_resnet_tf.nets.registry import Family, register_family
from ml_resnet_tf.nets.reversible import ReversibleBlock


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class MidpointBlock(ReversibleBlock):
    """One midpoint step; the state is ``(Y_j, Y_{j-1})``. Arguments as ``ODEBlock``."""

    two_step = True
    swap = True

    def build_branch(self, input_shape):
        if self.in_channels % 2 or self.in_channels > self.filters:
            raise ValueError(f"{self.name}: the midpoint's A acts on channel halves and the transition only pads: "
                             f"got {self.in_channels} -> {self.filters} channels")
        self.force = AntisymmetricBranch(self.in_channels, regularizer=self.kernel_regularizer,
                                         synchronized=self.synchronized, name="force")
        self.force.build(tuple(input_shape))

    def couplings(self):
        return [Coupling(1, 0, self.force, 2.0 * self.step_size)]


register_family(Family("midpoint", MidpointBlock, (32, 64, 112), {"midpoint62": (10, 10, 10)},
                       stem=normalized_stem, reversible=True,
                       description="midpoint reversible net, antisymmetric two-step scheme (Chang et al. 2018)"))
