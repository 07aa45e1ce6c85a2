"""The generic ODE network: a stem, stages of solver steps, a head (Section 3.1, Eq. 2).

A residual network discretises an ODE ``dY/dt = F(Y)``; each block is one step of a
solver with an explicit step size ``h`` (Appendix C). A *family* (``ml_resnet_tf.nets.families``)
supplies only its own parts, as a subclass of :class:`ODEBlock`:

* ``residual(x)``: the learned branch ``F``;
* ``shortcut(x)``: ``P``, the stage transition (identity inside a stage);
* ``update(state, p, g)``: how the state advances, given ``P(Y_j)`` and ``G = h * F(Y_j)``.
  One-step schemes carry a tensor; two-step schemes carry a tuple whose first entry is
  ``Y_j`` (:func:`main`);
* ``refine_from(source)`` / ``zero_branch()``: how a block is initialised when the net is
  interpolated (``ml_resnet_tf.transforms.interpolation``);
* ``flops(in_shape, out_shape)``, and optionally ``summaries()`` for TensorBoard.

Everything else is generic and lives here or beside it: building a net from its spec, the
per-block bookkeeping (stage, index, ``h``) that analyses read instead of layer names,
stochastic depth (Huang et al. 2016) around any family's branch, the trajectory, lesions,
and interpolation.

The net is an :class:`ODENet`, a ``keras.Sequential`` that also stores its ``NetSpec``: a
plain chain can be walked, rebuilt without some blocks (lesions) or with more (interpolation)
without reparsing a functional graph.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ml_resnet_tf.nets import memory
from ml_resnet_tf.nets.primitives import CONSTANT_VARIANCE, main, pad_shortcut


class ODEBlock(keras.layers.Layer):
    """One solver step ``state -> update(state, P(Y), G(Y))`` with an explicit step size.

    Args:
      filters: output channels.
      strides: 1, or 2 for the first block of a downsampling stage.
      step_size: ``h``. Interpolation halves it.
      stage, index: where the block sits (1-based), kept in its config so that analyses
        never parse layer names.
      survival: stochastic depth's probability of keeping the branch in training
        (Huang et al. 2016); 1 disables it. A dropped branch is not computed for the whole
        batch; at inference the branch is scaled by ``survival``, as that paper does.
      kernel_regularizer: applied to every convolution kernel (weight decay).
      synchronized: batch-norm statistics over all replicas of a ``tf.distribute`` strategy.
    """

    # A Keras layer's arguments are its config (get_config/from_config, saved .keras files): they stay flat.
    def __init__(self, filters, strides=1, step_size=1.0, stage=1, index=1, survival=1.0,  # noqa: PLR0913
                 kernel_regularizer=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if strides not in (1, 2):
            raise ValueError(f"strides must be 1 or 2, got {strides}")
        if not 0.0 < survival <= 1.0:
            raise ValueError(f"survival must be in (0, 1], got {survival}")
        self.filters, self.strides = int(filters), int(strides)
        self.step_size, self.survival = float(step_size), float(survival)
        self.stage, self.index = int(stage), int(index)
        self.synchronized = bool(synchronized)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.seed_generator = keras.random.SeedGenerator(name="drop_seed") if self.survival < 1 else None

    # -- what a family supplies -------------------------------------------------------------
    def build_branch(self, input_shape):
        """Builds the family's sublayers for an input ``Y_j`` of ``input_shape``."""
        raise NotImplementedError

    def residual(self, x, training=None):
        """F(Y): the branch before it is scaled by the step size."""
        raise NotImplementedError

    def shortcut(self, x, training=None):
        """P(Y): identity, or the stage transition of a downsampling block."""
        return pad_shortcut(x, self.filters, self.strides)

    def update(self, state, p, g):
        """The next state from ``P(Y_j)`` and ``G(Y_j)``; forward Euler by default (Eq. 2)."""
        return p + g

    def zero_branch(self):
        """Sets the branch to zero so the block starts as the identity step (interpolation)."""
        raise NotImplementedError

    def flops(self, in_shape, out_shape) -> int:
        """Forward FLOPs of one image through the block (``costs.flops_per_image``)."""
        raise NotImplementedError

    def summaries(self) -> dict:
        """Scalars of the block that TensorBoard shows per epoch, e.g. LM-ResNet's ``k``."""
        return {}

    def without_branch(self):
        """What deleting this block leaves (lesions): None for a block that keeps the shape."""
        return BranchRemoved(self) if self.changes_shape else None

    def skip(self, state):
        """The step with its branch removed, ``update(state, P(Y), 0)`` (``BranchRemoved``)."""
        p = self.shortcut(main(state), training=False)
        return self.update(state, p, ops.zeros_like(p))

    # -- generic ----------------------------------------------------------------------------
    def build(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape[0], (tuple, list)) else input_shape
        self.in_channels = int(shape[-1])
        self.build_branch(tuple(shape))

    @property
    def changes_shape(self) -> bool:
        """True for a downsampling block, whose shortcut is not the identity."""
        return self.strides != 1 or self.in_channels != self.filters

    def branch(self, x, p, training=None):
        """G(Y) = h * F(Y), under stochastic depth; ``p`` = P(Y) gives a dropped branch its shape."""
        if self.survival >= 1:
            return self.step_size * self.residual(x, training=training)
        if not training:
            return (self.survival * self.step_size) * self.residual(x, training=training)
        keep = keras.random.uniform((), seed=self.seed_generator) < self.survival
        if keras.backend.backend() == "jax":
            # lax.cond cannot carry batch norm's state updates out of a branch: mask instead (no saving).
            return ops.cast(keep, x.dtype) * self.step_size * self.residual(x, training=training)
        return ops.cond(keep, lambda: self.step_size * self.residual(x, training=training),
                        lambda: ops.zeros_like(p))

    def step(self, state, training=None):
        """``(next state, G(Y_j))``: the call, with the branch kept for the trajectory's norms."""
        x = main(state)
        p = self.shortcut(x, training=training)
        g = self.branch(x, p, training=training)
        return self.update(state, p, g), g

    def call(self, inputs, training=None):
        return self.step(inputs, training=training)[0]

    def refine_from(self, source: ODEBlock | None):
        """Initialises this new block of an interpolated net from ``source`` (Appendix B's copy),
        or as the identity step when there is none. Parameters are matched by their path inside
        the block, so a source that lacks one (a stage's first step) leaves it at its initial value;
        a family overrides this where such a parameter needs another value."""
        if source is None:
            self.zero_branch()
            return
        theirs = {_relative_path(v, source): v for v in source.weights}
        for variable in self.weights:
            key = _relative_path(variable, self)
            if key in theirs:  # through numpy: under JAX two variables must not share one buffer
                variable.assign(ops.convert_to_numpy(theirs[key]))
        self._hold_constant_channels()

    def _hold_constant_channels(self):
        """A batch-norm channel whose moving variance is ~0 (``CONSTANT_VARIANCE``) only ever saw a
        constant, e.g. a channel that a stage transition zero-padded and nothing had written to yet. The source outputs
        ``beta`` there; set ``gamma = 0`` so the copy does too wherever it sits. Otherwise the first
        nonzero input is divided by ``sqrt(epsilon)``, in training and at inference alike. This
        happened on real data: copies of a Hamiltonian stage's second block blew the logits up 1e10-fold.
        ``gamma`` still gets its gradient and can grow back."""
        for layer in self._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                variance = ops.convert_to_numpy(layer.moving_variance)
                constant = variance < CONSTANT_VARIANCE * np.median(variance)
                if constant.any():
                    gamma = ops.convert_to_numpy(layer.gamma).copy()
                    gamma[constant] = 0.0
                    layer.gamma.assign(gamma)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "step_size": self.step_size, "stage": self.stage, "index": self.index,
                "survival": self.survival, "synchronized": self.synchronized,
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


def _relative_path(variable, layer) -> str:
    marker = f"{layer.name}/"
    return variable.path[variable.path.index(marker) + len(marker):] if marker in variable.path else variable.path


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class Shortcut(keras.layers.Layer):
    """A parameter-free block with its branch removed: ``Y_{j+1} = P(Y_j)``.

    This is what deleting a downsampling ResNet block leaves (Section 3.3). A block that
    keeps the shape can simply be left out, but one that halves the resolution and widens
    the channels cannot: the blocks after it expect its output's shape. Removing only
    ``h * F`` keeps that shape and is exactly the removal Eq. 8 analyses.
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.strides = int(filters), int(strides)

    def call(self, inputs):
        return pad_shortcut(main(inputs), self.filters, self.strides)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


class BranchRemoved(keras.layers.Layer):
    """Any family's block with its branch removed, sharing the block's shortcut (and its parameters):
    the state advances by ``update(state, P(Y), 0)``. A view for lesion studies, not for saving."""

    def __init__(self, block: ODEBlock, **kwargs):
        super().__init__(name=f"{block.name}_shortcut", **kwargs)
        self.block = block

    def call(self, inputs):
        return self.block.skip(inputs)


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class Readout(keras.layers.Layer):
    """``Y_N`` from the last state of a multi-step family, for the head."""

    def call(self, inputs):
        return main(inputs)


@keras.saving.register_keras_serializable(package="ml_resnet_tf")
class ODENet(keras.Sequential):
    """A chain stem -> blocks -> head that also stores the ``NetSpec`` it was built from.

    ``spec`` is a plain dict in the config (``registry.NetSpec.to_config``), so a reloaded
    ``.keras`` file knows its family and options; the blocks themselves carry their stage,
    index and ``h``, which :func:`stages` reads.
    """

    def __init__(self, layers=None, spec=None, trainable=True, name=None, provenance=None):
        super().__init__(layers, trainable=trainable, name=name)
        self.spec = dict(spec or {})
        # Who wrote this file (``runs.parts``: the run's id and the epoch), carried, never read here.
        self.provenance = dict(provenance or {})

    def call(self, inputs, training=None, mask=None, **kwargs):
        if training and self.spec.get("memory_efficient"):
            return memory.call_layers(self.layers, inputs, training)
        return super().call(inputs, training=training, mask=mask, **kwargs)

    def get_config(self):
        return {**super().get_config(), "spec": self.spec, "provenance": self.provenance}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        spec, provenance = config.pop("spec", None), config.pop("provenance", None)
        model = super().from_config(config, custom_objects=custom_objects)
        model.spec, model.provenance = dict(spec or {}), dict(provenance or {})
        return model


def blocks(model) -> list[ODEBlock]:
    """The model's solver steps, in order."""
    return [layer for layer in model.layers if isinstance(layer, ODEBlock)]


def stages(model) -> list[list[ODEBlock]]:
    """The blocks grouped by stage, in order: ``[[b11, b12], [b21, ...], ...]``."""
    grouped = {}
    for block in blocks(model):
        grouped.setdefault(block.stage, []).append(block)
    return [grouped[s] for s in sorted(grouped)]


def blocks_per_stage(model) -> tuple[int, ...]:
    """``(2, 2, 2)`` for ResNet-14."""
    return tuple(len(stage) for stage in stages(model))


def step_size(model) -> float:
    """The explicit step size ``h`` shared by the model's blocks."""
    sizes = {block.step_size for block in blocks(model)}
    if len(sizes) != 1:
        raise ValueError(f"{model.name} has blocks with different step sizes {sorted(sizes)}")
    return sizes.pop()


def trainable_params(model) -> int:
    """The number of trainable parameters (Table 5's count)."""
    return int(sum(math.prod(v.shape) for v in model.trainable_variables))


def format_blocks(blocks_per_stage) -> str:
    """``(2, 2, 2)`` -> ``'2-2-2'``, the paper's notation."""
    return "-".join(str(n) for n in blocks_per_stage)


def survival_rates(num_blocks: int, last_survival: float) -> list[float]:
    """Stochastic depth's linear rule: block ``l`` of ``L`` survives with ``1 - (l/L)(1 - p_L)``
    (Huang et al. 2016, Eq. 4), counted over the whole net; interpolation recomputes it for the
    new ``L``."""
    return [1.0 - (index / num_blocks) * (1.0 - last_survival) for index in range(1, num_blocks + 1)]
