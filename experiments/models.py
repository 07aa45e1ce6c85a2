"""Lists every preset: name, family, blocks per stage, depth, h and trainable parameters.

    python -m experiments.models [--families=lm_resnet]

Parameters are counted on CIFAR-10 (10 classes) and CIFAR-100 (100 classes) inputs.
"""


from absl import app, flags

from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.nets import (
    odenet,
    registry,
)

flags.DEFINE_list("families", [], "Only these families (default: all).")
flags.register_validator("families", lambda names: set(names) <= set(registry.FAMILIES),
                         f"--families: choose from {', '.join(registry.FAMILIES)}")
FLAGS = flags.FLAGS


def rows(families=()) -> list[tuple]:
    """(name, family, blocks, depth, h, CIFAR-10 params, CIFAR-100 params) for every preset."""
    table = []
    for name in registry.list_models():
        spec = registry.resolve(name)
        if families and spec.family not in families:
            continue
        counts = [odenet.trainable_params(registry.build_model(name, classes)) for classes in (10, 100)]
        table.append((name, spec.family, odenet.format_blocks(spec.blocks_per_stage), spec.depth, spec.step_size,
                      *counts))
    return table


def main(argv):
    reject_positional(argv)
    print(f"{'name':<16}{'family':<12}{'blocks':<14}{'depth':>6}{'h':>5}{'CIFAR-10':>12}{'CIFAR-100':>12}")
    for name, family, blocks, depth, h, c10, c100 in rows(FLAGS.families):
        print(f"{name:<16}{family:<12}{blocks:<14}{depth:>6}{h:>5g}{c10:>12,}{c100:>12,}")


if __name__ == "__main__":
    app.run(main)
