"""Names to nets: families, presets, specs and the one generic builder (after timm's registry).

A :class:`Family` registers its block class, default widths, depth rule, stem and presets.
A :class:`NetSpec` describes one net (family, blocks per stage, widths, ``h``, stochastic
depth, the family's options); it is stored in the built model's config, so analyses and the
trainer read it instead of parsing names. :func:`build_model` resolves a name and stays thin:
all nets are built by :func:`build_net`.

Names (``build_model``): a preset (``resnet50``, ``wresnet14``, ``lm_resnet56``, ...); a family
name with ``blocks_per_stage``; or a family name with a depth, ``{family}{depth}``, where the
depth is ``layers_per_block * sum(blocks) + 2`` with equal stages (so ``resnet26`` and
``lm_resnet26`` are 4-4-4).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import keras

from ml_resnet_tf.nets import odenet, primitives

STAGES = 3


def kernel_regularizer(weight_decay: float):
    """Coupled weight decay: adds ``weight_decay * w`` to each kernel's gradient.

    Keras' L2(l) penalizes ``l * sum(w**2)``, so l = weight_decay / 2. This is the
    TensorFlow idiom ``weight_decay * tf.nn.l2_loss(w)`` of the paper's era, which,
    unlike the decoupled ``weight_decay`` of Keras optimizers, passes through the
    momentum buffer.
    """
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None


def conv_stem(width: int, regularizer, synchronized: bool) -> list:
    """The paper's stem: one bias-free 3x3 convolution (Section 5.1)."""
    return [primitives.conv3x3(width, "stem_conv", regularizer)]


@dataclasses.dataclass(frozen=True)
class Family:
    """What a network family registers; its block class does the rest (``odenet.ODEBlock``).

    ``presets`` maps preset names to blocks per stage, or to ``(blocks per stage, widths)`` where a
    preset has its own widths; ``layers_per_block`` is the depth one block adds (2 convolutions for
    a ResNet block); ``stem(width, regularizer, synchronized)`` returns the layers before the first
    block; ``reversible``: its blocks can be inverted, so ``memory_efficient`` training applies.
    """

    name: str
    block: type
    widths: tuple[int, ...]
    presets: dict
    layers_per_block: int = 2
    stem: Callable = conv_stem
    description: str = ""
    reversible: bool = False


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    return family


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """One net: everything that fixes its architecture. ``stochastic_depth`` is p_L, the last
    block's survival probability (1: off); ``options`` are the family's own block arguments.
    ``memory_efficient``: training recomputes a reversible net's activations from the inverse
    instead of storing them (``ml_resnet_tf.nets.memory``); the function computed is the same."""

    family: str
    blocks_per_stage: tuple[int, ...]
    widths: tuple[int, ...]
    step_size: float = 1.0
    stochastic_depth: float = 1.0
    options: dict = dataclasses.field(default_factory=dict)
    memory_efficient: bool = False

    def __post_init__(self):
        object.__setattr__(self, "blocks_per_stage", tuple(int(n) for n in self.blocks_per_stage))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.blocks_per_stage or min(self.blocks_per_stage) < 1:
            raise ValueError(f"every stage needs at least one block, got {self.blocks_per_stage}")
        if len(self.blocks_per_stage) > len(self.widths):
            raise ValueError(f"at most {len(self.widths)} stages, got {self.blocks_per_stage}")
        if self.step_size <= 0:
            raise ValueError(f"the step size must be positive, got {self.step_size}")
        if not 0 < self.stochastic_depth <= 1:
            raise ValueError(f"stochastic depth's p_L must be in (0, 1], got {self.stochastic_depth}")
        if self.memory_efficient and not FAMILIES[self.family].reversible:
            reversible = ", ".join(f.name for f in FAMILIES.values() if f.reversible)
            raise ValueError(f"memory-efficient training recomputes activations from the inverse, which {self.family} "
                             f"has not: use a reversible family ({reversible})")

    @property
    def depth(self) -> int:
        return FAMILIES[self.family].layers_per_block * sum(self.blocks_per_stage) + 2

    @property
    def name(self) -> str:
        """``resnet14``; ``resnet_3-5-7`` for uneven stages."""
        if len(set(self.blocks_per_stage)) == 1 and len(self.blocks_per_stage) == STAGES:
            return f"{self.family}{self.depth}"
        return f"{self.family}_{odenet.format_blocks(self.blocks_per_stage)}"

    def to_config(self) -> dict:
        return {**dataclasses.asdict(self), "blocks_per_stage": list(self.blocks_per_stage),
                "widths": list(self.widths)}

    @classmethod
    def from_model(cls, model) -> NetSpec:
        """The spec of a built (or reloaded, or interpolated) model. A plain ``keras.Sequential`` saved
        before specs existed (version 0.1) gets one from its blocks: their class and stage widths."""
        if getattr(model, "spec", None):
            return cls(**model.spec)
        stages = odenet.stages(model)
        widths = tuple(stage[0].filters for stage in stages)
        matches = [f for f in FAMILIES.values() if isinstance(stages[0][0], f.block)]
        family = next((f for f in matches if f.widths == widths), matches[0])
        return cls(family.name, tuple(len(s) for s in stages), widths, odenet.step_size(model))


_DEPTH_NAME = re.compile(r"^([a-z_]*[a-z])(\d+)$")


def list_models() -> list[str]:
    """Every preset name, family by family."""
    return [name for family in FAMILIES.values() for name in family.presets]


def resolve(name: str, blocks_per_stage: Sequence[int] | None = None, step_size: float | None = None,
            stochastic_depth: float = 1.0, memory_efficient: bool = False, **options) -> NetSpec:
    """The spec ``name`` means; see the module docstring. Raises ValueError listing the accepted forms."""
    family, blocks, widths = _parse(name)
    blocks = tuple(blocks_per_stage) if blocks_per_stage is not None else blocks
    if blocks is None:
        raise ValueError(f"{name!r} is a family: give blocks_per_stage, or a depth name ({_forms()})")
    return NetSpec(family.name, blocks, widths, 1.0 if step_size is None else step_size,
                   stochastic_depth, options, memory_efficient)


def _parse(name: str):
    for family in FAMILIES.values():
        if name in family.presets:
            preset = family.presets[name]
            blocks, widths = preset if isinstance(preset[0], tuple) else (preset, family.widths)
            return family, blocks, widths
        if name == family.name:
            return family, None, family.widths
    match = _DEPTH_NAME.match(name)
    family = FAMILIES.get(match.group(1)) if match else None
    if family:
        depth, per_stage = int(match.group(2)), family.layers_per_block * STAGES
        if depth >= per_stage + 2 and (depth - 2) % per_stage == 0:
            return family, ((depth - 2) // per_stage,) * STAGES, family.widths
        raise ValueError(f"unknown model {name!r}: {family.name} depths are {family.name}{{{per_stage}n+2}} with "
                         f"n >= 1, e.g. {family.name}{4 * per_stage + 2} (python -m experiments.models lists presets)")
    # Short, because it ends a binary in one line: the long list is one command away.
    raise ValueError(f"unknown model {name!r}: use a preset or a depth name such as resnet110, lm_resnet56 or "
                     "hamiltonian74 (python -m experiments.models lists them all)")


def _forms() -> str:
    return ", ".join(f"{f.name}{{{f.layers_per_block * STAGES}n+2}}" for f in FAMILIES.values())


def build_net(spec: NetSpec, num_classes: int = 10, input_shape: Sequence[int] = (32, 32, 3),
              weight_decay: float = 0.0, sync_batch_norm: bool = False, name: str | None = None) -> odenet.ODENet:
    """Builds ``spec``: the family's stem, its blocks stage by stage (stride 2 opens stages 2 and 3),
    then the generic head BN -> ReLU -> global average pooling -> dense.

    The classifier computes in float32 under a mixed-precision policy, so that the logits and
    the loss keep full precision.
    """
    family = FAMILIES[spec.family]
    regularizer = kernel_regularizer(weight_decay)
    survival = iter(odenet.survival_rates(sum(spec.blocks_per_stage), spec.stochastic_depth))
    layers = [keras.Input(tuple(input_shape)), *family.stem(spec.widths[0], regularizer, sync_batch_norm)]
    for stage, (count, width) in enumerate(zip(spec.blocks_per_stage, spec.widths), start=1):
        for index in range(1, count + 1):
            layers.append(family.block(
                width, strides=2 if stage > 1 and index == 1 else 1, step_size=spec.step_size, stage=stage,
                index=index, survival=next(survival), kernel_regularizer=regularizer,
                synchronized=sync_batch_norm, name=f"stage{stage}_block{index}", **spec.options))
    layers += [
        odenet.Readout(name="readout"),
        primitives.batch_norm("final_bn", sync_batch_norm),
        keras.layers.ReLU(name="final_relu"),
        keras.layers.GlobalAveragePooling2D(name="pool"),
        keras.layers.Dense(num_classes, kernel_regularizer=regularizer, dtype="float32", name="classifier"),
    ]
    return odenet.ODENet(layers, spec=spec.to_config(), name=name or spec.name)


def build_model(name: str, num_classes: int = 10, input_shape: Sequence[int] = (32, 32, 3),
                step_size: float | None = None, blocks_per_stage: Sequence[int] | None = None,
                weight_decay: float = 0.0, sync_batch_norm: bool = False, **options) -> odenet.ODENet:
    """Builds a net by name (module docstring); ``options`` are ``stochastic_depth`` and the family's own."""
    spec = resolve(name, blocks_per_stage, step_size, **options)
    custom = blocks_per_stage is not None
    return build_net(spec, num_classes, input_shape, weight_decay, sync_batch_norm,
                     name=spec.name if custom else name)
