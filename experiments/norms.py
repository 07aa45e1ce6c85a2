"""Residual norms of trained runs: Figs. 3, 4 and 7 (Section 3.2, Appendix C).

    python -m experiments.norms --model_dir=runs/resnet32,runs/resnet62_h0.5,runs/resnet122_h0.25 \
        --output_dir=results/norms

For each run (its ``model.keras``, or its latest checkpoint if unfinished) it measures
on the test images, in inference mode, every block's ``||Y_j||``, ``||G(Y_j)||`` and
``||F(Y_j)|| = ||G(Y_j)|| / h``, each the per-example L2 norm over height x width x
channels averaged over the images, and gamma, their mean over blocks. It writes
``norms.json`` and three PNGs: ``figure3.png`` (gamma against the number of blocks,
one panel per dataset), ``figure4.png`` (per-block norms, one panel per run) and
``figure7.png`` (``||F||`` against conceptual time ``(j - 1) h``, one panel per dataset).
"""

import os

from absl import app, flags

from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import studies
from ml_resnet_tf.runs.records import write_json

common.define_analysis_flags("norms.json and the PNGs")

FLAGS = flags.FLAGS


def main(argv):
    reject_positional(argv)
    with common.one_line_errors():
        folder = common.analysis_dir(FLAGS.model_dir[0], FLAGS.output_dir)
        entries = studies.measure_norms(FLAGS.model_dir, FLAGS.data_dir, FLAGS.num_images)
    write_json(os.path.join(folder, "norms.json"), entries)
    figures = {f: (os.path.join(folder, f"figure{f}.png"), entries) for f in ("3", "4", "7")}
    for path in [os.path.join(folder, "norms.json")] + studies.draw_norm_figures(entries, figures):
        print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
