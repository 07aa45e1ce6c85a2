"""The leapfrog reversible net (Chang et al., AAAI 2018; notes §1.5, Meganet's ``LeapFrogNN``): the
second-order ODE ``Y'' = -K^T ReLU(BN(K Y))`` by the leapfrog rule on the pair ``(Y_j, Y_{j-1})``,

    Y_{j+1} = 2 Y_j - Y_{j-1} - h^2 K_j^T ReLU(BN(K_j Y_j)),

with the inverse ``Y_{j-1} = 2 Y_j - Y_{j+1} - h^2 K_j^T ReLU(BN(K_j Y_j))``, a difference of nearly
equal terms whose rounding error grows with depth (docs/reversible.md measures it). Choices (notes
§8 items 2 and 3):

* ``Y_{-1} = Y_0``: zero initial velocity, Meganet's current initial condition (since 23a2bbc).
* The pair is carried across blocks and stage transitions, both entries pooled and padded alike;
  the recursion is not restarted per block as Meganet does, so one net is one discretisation.
* ``K`` is square over the whole state, without a pre-normalisation (``doubleSymLayer``
  normalises after ``K``). leapfrog62 is 10-10-10 at widths 16-32-56: the carried pair then has
  as many channels as the Hamiltonian's ``(Y, Z)``, and the 371,520 convolution parameters equal
  midpoint62's. Depth counts ``K`` and ``K^T``: ``2 * blocks + 2``.

Refinement: the force term is ``h^2`` times ``Phi``, and the block computes it from its explicit
``h``. Halving ``h`` therefore *quarters* the coefficient: two steps of ``h/2`` cover the time of one
step of ``h``, and a second difference ``(Y_{j+1} - 2 Y_j + Y_{j-1}) / h^2 = Y''`` needs ``h^2`` at the
new spacing to approximate the same acceleration. Copying ``K`` (and BN) and quartering the
coefficient is therefore the copy rule of the first-order families; the pair's spacing, and with it
the velocity ``(Y_j - Y_{j-1}) / h``, is recomputed by the refined net itself.
"""

import keras

from ml_resnet_tf.nets.branches import SymmetricBranch, normalized_stem
from ml_resnet_tf.nets.coupling import Coupling
from ml_resnet_tf.nets.registry import Family, register_family
from ml_resnet_tf.nets.reversible import ReversibleBlock


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class LeapfrogBlock(ReversibleBlock):
    """One leapfrog step; the state is ``(Y_j, Y_{j-1})``. Arguments as ``ODEBlock``."""

    two_step = True
    swap = True

    def build_branch(self, input_shape):
        if self.in_channels > self.filters:
            raise ValueError(f"{self.name}: the transition only pads, got {self.in_channels} -> {self.filters}")
        self.force = SymmetricBranch(self.in_channels, pre_norm=False, regularizer=self.kernel_regularizer,
                                     synchronized=self.synchronized, name="force")
        self.force.build(tuple(input_shape))

    def couplings(self):
        return [Coupling(1, 0, self.force, -self.step_size ** 2, scale=-1.0, carry=2.0)]


register_family(Family("leapfrog", LeapfrogBlock, (16, 32, 56), {"leapfrog62": (10, 10, 10)},
                       stem=normalized_stem, reversible=True,
                       description="leapfrog reversible net, second-order two-step scheme (Chang et al. 2018)"))
