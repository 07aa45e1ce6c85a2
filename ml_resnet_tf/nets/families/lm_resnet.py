"""LM-ResNet (Lu, Zhong, Li, Dong, ICML 2018): the linear two-step scheme
``u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + h f(u_n)``, with one trainable ``k_n`` per block.

Choices (notes §2, ``2prime/LM-ResNet`` ``MResNet.py``):

* ``f`` is the pre-activation ResNet module (notes §2.3), as in ``families.resnet``; ``h`` is
  explicit, and ``h = 1`` is the published net.
* The first block of every stage is a forward-Euler step: the reference sets
  ``u_{-1} := u_0`` there, and with ``u_{n-1} = u_n`` the two-step update *is* Euler whatever
  ``k``, so that block gets no ``k`` (the reference creates one and never uses it).
* A stage transition is a projection shortcut BN -> ReLU -> 1x1 conv, stride 2 (reference
  ``Downsample``); the projected input becomes ``u_{n-1}`` of the stage's second block.
* ``k_n ~ U(-0.1, 0)``: the reference draws ``1 - k_n ~ U(1, 1.1)``. Scalar, not per channel
  (``MResNetC`` is unusable as published, notes §2.1).

Parameter counts against the notes' table (§2.3, CIFAR-10): ours are its "without unused"
column minus the 3 unused ``k`` of the stage-first blocks, e.g. LM-ResNet-20 272,384 against
272,387 (and 273,475 with the reference's unused stem BN and ``downsample1``);
``tests/test_families.py`` pins all five presets.

Multi-level refinement. A Taylor expansion of the update around ``u_n`` gives the modified
equation (notes §2.6) ``(1 + k) u' + (1 - k) (h/2) u'' + O(h^2) = f(u)``. Halving ``h`` with the
same ``k`` keeps the leading-order ODE ``(1 + k) u' = f(u)`` and halves only the ``u''`` term:
the refined net discretises the same dynamics, an O(h) change like ResNet's copy rule. So a new
block copies its source's ``f`` *and* ``k``; a block copied from a stage-first (Euler) step gets
``k = 0``, which is that Euler step; an identity-initialised block gets ``F = 0`` and ``k = 0``,
so it computes ``u_{n+1} = u_n``. The carried state ``u_{n-1}`` is not a parameter: the refined
net recomputes it at its own spacing ``h/2`` in every forward pass.
"""

import keras
from keras import ops

from ml_resnet_tf.nets import odenet, primitives
from ml_resnet_tf.nets.families.resnet import ResidualBlock
from ml_resnet_tf.nets.registry import Family, register_family


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class LMBlock(ResidualBlock):
    """One LM step; the state is ``(u_n, u_{n-1})``. Arguments as ``ODEBlock``."""

    def build_branch(self, input_shape):
        if self.changes_shape:
            self.project_bn = primitives.batch_norm("project_bn", self.synchronized)
            self.project = keras.layers.Conv2D(self.filters, 1, strides=self.strides, use_bias=False,
                                               kernel_initializer="he_normal",
                                               kernel_regularizer=self.kernel_regularizer, name="project")
            self.project_bn.build(input_shape)
            self.project.build(input_shape)
        self.build_module(input_shape)
        if self.index > 1:
            self.k = self.add_weight(shape=(), name="k", initializer=keras.initializers.RandomUniform(-0.1, 0.0))

    def shortcut(self, x, training=None):
        """P: the identity, or the projection BN -> ReLU -> 1x1 conv (stride 2) at a transition."""
        return self.project(ops.relu(self.project_bn(x, training=training))) if self.changes_shape else x

    def update(self, state, p, g):
        x = primitives.main(state)
        if self.index == 1 or not isinstance(state, (tuple, list)):
            return (p + g, p)  # Euler: u_{-1} := u_0, projected at a transition
        k = ops.cast(self.k, x.dtype)
        return ((1.0 - k) * x + k * state[1] + g, x)

    def zero_branch(self):
        super().zero_branch()
        if self.index > 1:
            self.k.assign(0.0)

    def refine_from(self, source):
        super().refine_from(source)
        if source is not None and self.index > 1 and source.index == 1:
            self.k.assign(0.0)  # copied from an Euler step: k = 0 is that step

    def summaries(self):
        return {"k": float(ops.convert_to_numpy(self.k))} if self.index > 1 else {}

    def without_branch(self):
        return odenet.ODEBlock.without_branch(self)  # the projection has parameters: no stand-alone Shortcut

    def flops(self, in_shape, out_shape):
        (h, w, c), (ho, wo, co) = in_shape[1:], out_shape[1:]
        projection = 3 * h * w * c + primitives.conv_flops(ho, wo, 1, c, co) if self.changes_shape else 0
        combine = 3 * ho * wo * co if self.index > 1 else 0  # (1 - k) u_n + k u_{n-1}
        return super().flops(in_shape, out_shape) + projection + combine

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (tuple, list)) else input_shape
        out = super().compute_output_shape(shape)
        return (out, out)


register_family(Family("lm_resnet", LMBlock, (16, 32, 64),
                       {f"lm_resnet{d}": ((d - 2) // 6,) * 3 for d in (20, 32, 44, 56, 110)},
                       description="LM-ResNet, linear two-step scheme (Lu et al. 2018)"))
