"""Memory-efficient training of reversible nets: recompute activations from the inverse (notes §1.9, §7.2).

Within a stage, consecutive reversible blocks form one *chain*, computed as a single op with a
custom gradient. Its forward pass keeps only the chain's output; its backward pass walks the
couplings (``ml_resnet_tf.nets.reversible``) last to first, and for each one evaluates the branch once,
under a VJP, on the already reconstructed source part. That one evaluation both undoes the coupling
(the input of the step) and gives the coupling's gradients, so the backward costs one extra branch
forward per coupling and activation memory does not grow with the number of blocks in a stage.
What stays stored is O(stages): each chain's input and output, and the layers outside chains (the
stem, the stage transitions, the first block of a two-step net, which lifts ``Y_0`` to a pair; a
transition's input is kept, since pooling and padding cannot be undone).

Batch norm. Branches run through ``Layer.stateless_call`` with explicit weights (notes §7.2 point
2), in training mode. The forward pass returns the updated moving statistics as outputs and they are
assigned once, outside the custom gradient, from the same batch statistics as ordinary training; the
backward recomputation discards its own. So the moving averages are exactly those of ordinary
training, and no tracer leaks out of a JAX ``custom_vjp``.

Backends. TensorFlow: ``tf.custom_gradient`` with ``GradientTape(output_gradients=...)`` as the VJP;
JAX: ``jax.custom_vjp`` with ``jax.vjp``. Torch (where ``keras.ops`` has no VJP and
``autograd.Function`` takes one output, notes §7.1) falls back to ``keras.remat`` of the same
stateless forward: exact gradients, O(blocks per stage) activation memory, one extra forward.
``method="remat"`` selects that fallback on any backend (tests compare all three).
"""

from __future__ import annotations

import keras
from keras import ops

from ml_resnet_tf.nets.coupling import Invertible

METHODS = ("reversible", "remat")


def call_layers(layers, inputs, training=None, method: str | None = None):
    """``layers`` applied in turn, with every run of invertible reversible blocks as one chain."""
    state, chain = inputs, []
    for layer in layers:
        if isinstance(layer, Invertible) and layer.joins_chain(state, bool(chain)):
            chain.append(layer)
            continue
        state = run_chain(chain, state, training, method)
        chain = []
        state = layer(state, training=training)
    return run_chain(chain, state, training, method)


def run_chain(blocks: list[Invertible], state, training=None, method: str | None = None):
    """The blocks' output, recomputed from the inverse in the backward pass (module docstring)."""
    if not blocks:
        return state
    plan = Plan(blocks, training)
    method = method or ("remat" if keras.backend.backend() == "torch" else "reversible")
    if method not in METHODS:
        raise ValueError(f"unknown memory-efficient method {method!r}; use one of {METHODS}")
    parts = blocks[0].split(state)
    args = (parts, plan.values("trainable_variables"), plan.values("non_trainable_variables"), plan.coefficients)
    if method == "remat":
        out, statistics = keras.remat(plan.forward)(*args)
    else:
        out, statistics = _BACKENDS[keras.backend.backend()](plan, *args)
    for variable, value in zip(plan.variables("non_trainable_variables"), statistics):
        variable.assign(value)
    return blocks[-1].join(out)


class Plan:
    """The chain as a flat list of couplings and swaps, with its weights as explicit lists."""

    def __init__(self, blocks, training):
        self.training = training
        self.steps, self.coefficients = [], []
        for block in blocks:
            for coupling, coefficient in zip(block.couplings(), block.coefficients(training)):
                self.steps.append(coupling)
                self.coefficients.append(ops.convert_to_tensor(coefficient, "float32"))
            if block.swap:
                self.steps.append(None)
        self.couplings = [step for step in self.steps if step is not None]

    def variables(self, kind: str) -> list:
        return [v for c in self.couplings for v in getattr(c.branch, kind)]

    def values(self, kind: str) -> list:
        return [v.value for v in self.variables(kind)]

    def _slices(self, kind: str) -> list[slice]:
        slices, start = [], 0
        for c in self.couplings:
            count = len(getattr(c.branch, kind))
            slices.append(slice(start, start + count))
            start += count
        return slices

    def forward(self, parts, weights, statistics, coefficients):
        """The chain without side effects: ``(output parts, updated moving statistics)``."""
        parts, updated, k = list(parts), [], 0
        for step, w, s in self._walk(weights, statistics):
            if step is None:
                parts.reverse()
                continue
            branch, new_statistics = step.branch.stateless_call(w, s, parts[step.source], training=self.training)
            parts[step.target] = (step.scale_carry(parts)
                                  + ops.cast(coefficients[k], branch.dtype) * branch)
            updated += list(new_statistics)
            k += 1
        return parts, updated

    def backward(self, parts, grads, weights, statistics, coefficients, vjp, barrier):
        """Gradients for the chain's input parts and weights, rebuilding the parts as it goes.

        ``barrier(parts, grads)`` orders the walk: the inverse alone depends only on the chain's
        output, so a dataflow scheduler would otherwise run all of it first and hold every rebuilt
        state at once, which is the memory the method exists to save."""
        parts, grads = list(parts), list(grads)
        weight_grads = [None] * len(weights)
        slices, k = self._slices("trainable_variables"), len(self.couplings)
        for step, w, s in reversed(list(self._walk(weights, statistics))):
            if step is None:
                parts.reverse()
                grads.reverse()
                continue
            k -= 1
            parts, grads = barrier(parts, grads)
            coefficient = ops.cast(coefficients[k], parts[step.source].dtype)

            def branch(x, *w, step=step, s=s):
                return step.branch.stateless_call(list(w), s, x, training=self.training)[0]

            value, pullback = vjp(branch, parts[step.source], *w)
            parts[step.target] = step.undo(parts, coefficient * value)
            upstream = grads[step.target]
            source_grad, *w_grads = pullback(coefficient * upstream)
            grads[step.source] = grads[step.source] + source_grad + (step.carry * upstream if step.carry else 0)
            grads[step.target] = upstream if step.scale == 1 else step.scale * upstream
            weight_grads[slices[k]] = w_grads
        return grads, weight_grads

    def _walk(self, weights, statistics):
        trainable, other = self._slices("trainable_variables"), self._slices("non_trainable_variables")
        k = 0
        for step in self.steps:
            if step is None:
                yield None, None, None
            else:
                yield step, list(weights[trainable[k]]), list(statistics[other[k]])
                k += 1


def _tensorflow(plan, parts, weights, statistics, coefficients):
    import tensorflow as tf

    def vjp(fn, *primals):
        with tf.GradientTape() as tape:
            tape.watch(primals)
            out = fn(*primals)
        return out, lambda ct: tape.gradient(out, primals, output_gradients=ct)

    def barrier(parts, grads):
        with tf.control_dependencies(grads):
            return [tf.identity(p) for p in parts], grads

    counts = [len(parts), len(weights), len(statistics)]

    @tf.custom_gradient
    def chain(*args):
        p, w, s = args[:counts[0]], args[counts[0]:counts[0] + counts[1]], args[sum(counts[:2]):sum(counts)]
        out, updated = plan.forward(p, w, s, coefficients)

        def grad(*upstream):
            ups = [tf.zeros_like(o) if u is None else u for o, u in zip(out, upstream[:len(out)])]
            part_grads, weight_grads = plan.backward(out, ups, w, s, coefficients, vjp, barrier)
            return list(part_grads) + list(weight_grads) + [None] * len(s)

        return tuple(out) + tuple(updated), grad

    result = chain(*parts, *weights, *statistics)
    return list(result[:len(parts)]), list(result[len(parts):])


def _jax(plan, parts, weights, statistics, coefficients):
    import jax

    def barrier(parts, grads):
        return jax.lax.optimization_barrier((parts, grads))

    @jax.custom_vjp
    def chain(parts, weights, statistics, coefficients):
        return plan.forward(parts, weights, statistics, coefficients)

    def forward(parts, weights, statistics, coefficients):
        out, updated = plan.forward(parts, weights, statistics, coefficients)
        return (out, updated), (out, weights, statistics, coefficients)

    def backward(saved, cotangents):
        out, weights, statistics, coefficients = saved
        part_grads, weight_grads = plan.backward(out, cotangents[0], weights, statistics, coefficients, jax.vjp,
                                                 barrier)
        zeros = jax.tree_util.tree_map(jax.numpy.zeros_like, (statistics, coefficients))
        return (list(part_grads), list(weight_grads)) + zeros

    chain.defvjp(forward, backward)
    return chain(list(parts), list(weights), list(statistics), list(coefficients))


_BACKENDS = {"tensorflow": _tensorflow, "jax": _jax}

