"""How exactly a reversible stage reconstructs its input, against depth (issue: exact inverse).

    python -m experiments.inverse --depths=1,4,16,64,256 --dtypes=float32,float64 --output=inverse.json

For each reversible family, dtype and depth N it runs N blocks of one stage forward from a random
state, then inverts them (``reversible.invert``) and reports ``||x_rec - x|| / ||x||`` over all parts
of the state. Batch norm runs in training mode by default, as in the memory-efficient backward pass;
the weights are at their initialisation (``--seed``), the state where a run starts. Rounding
error grows with depth; where it passes ``--usable`` (default 1e-3) the memory-efficient
gradient is no longer trustworthy, and the table marks it.
"""


import keras
import numpy as np
from absl import app, flags
from keras import ops

from ml_resnet_tf.cli.usage import new_file, reject_positional, write_measurement
from ml_resnet_tf.nets import (
    registry,
    reversible,
)

REVERSIBLE = [f.name for f in registry.FAMILIES.values() if f.reversible]
flags.DEFINE_list("families", REVERSIBLE, "Reversible families to measure.")
flags.DEFINE_list("depths", ["1", "4", "16", "64", "256"], "Blocks in the stage.")
flags.DEFINE_list("dtypes", ["float32", "float64"], "Float types.")
flags.DEFINE_float("step_size", 1.0, "h of every block (the presets' 1).")
flags.DEFINE_integer("width", 32, "Channels of the state (each part of a two-step pair).")
flags.DEFINE_integer("image_size", 8, "Height and width of the state.")
flags.DEFINE_integer("batch_size", 16, "Examples in the state.")
flags.DEFINE_enum("bn_mode", "training", ["training", "inference"], "Batch-norm mode of the blocks.")
flags.DEFINE_float("usable", 1e-3, "Relative error above which the reconstruction is marked unusable.")
flags.DEFINE_integer("seed", 0, "Seed for the weights and the state.")
flags.DEFINE_string("output", "", "Write the rows as JSON here too.")
for name in ("families", "dtypes"):
    choices = {"families": REVERSIBLE, "dtypes": ["float16", "float32", "float64"]}[name]
    flags.register_validator(name, lambda values, c=choices: set(values) <= set(c), f"--{name}: one of {choices}")
flags.register_validator("depths", lambda d: all(v.isdigit() and int(v) > 0 for v in d),
                         "--depths are positive integers")
FLAGS = flags.FLAGS


def measure(family: str, dtype: str, depths: list[int]) -> list[dict]:
    """The relative reconstruction error of a stage of each depth, one forward pass for all."""
    keras.config.set_dtype_policy(dtype)
    keras.utils.set_random_seed(FLAGS.seed)
    shape = (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, FLAGS.width)
    x = ops.convert_to_tensor(np.random.default_rng(FLAGS.seed).normal(size=shape).astype(dtype))
    try:
        rows = reversible.reconstruction_errors(registry.FAMILIES[family].block, depths, x, FLAGS.step_size,
                                                training=FLAGS.bn_mode == "training")
    finally:
        keras.config.set_dtype_policy("float32")
    return [{"family": family, "dtype": dtype, **row,
             "usable": bool(np.isfinite(row["relative_error"]) and row["relative_error"] <= FLAGS.usable)}
            for row in rows]


def main(argv):
    reject_positional(argv)
    if FLAGS.output:
        new_file(FLAGS.output, "--output")  # a path that cannot take the file fails now, not after the measuring
    depths = sorted({int(d) for d in FLAGS.depths})
    rows = [row for family in FLAGS.families for dtype in FLAGS.dtypes for row in measure(family, dtype, depths)]
    print(f"{'family':<12} {'dtype':<8} {'blocks':>6} {'rel. error':>11} {'|out|/|in|':>10}  usable")
    for r in rows:
        print(f"{r['family']:<12} {r['dtype']:<8} {r['depth']:>6} {r['relative_error']:>11.2e} "
              f"{r['output_norm_ratio']:>10.3g}  {'yes' if r['usable'] else 'NO'}")
    if FLAGS.output:
        write_measurement(FLAGS.output, {"settings": {k: FLAGS[k].value for k in (
            "step_size", "width", "image_size", "batch_size", "bn_mode", "usable", "seed")}, "rows": rows})


if __name__ == "__main__":
    app.run(main)
