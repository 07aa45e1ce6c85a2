"""Compares finished (or running) runs side by side: one Markdown row per run folder.

    python -m experiments.compare --model_dirs=runs/resnet26,runs/resnet26_i,runs/lm_resnet26

Each row gives the model and its cycles, the last cycle's parameters, the test error after each
cycle and at the end, the training time (the paper's "Time": steps and interpolations, on the CPU
clock where every run trained on CPUs and has it, else on the wall clock; ``analysis.savings.clock``),
how the run restarts its cycles (interpolation rule, warm-up, batch-norm re-estimation), and each
interpolation's test accuracy right before and after it with the epochs it took to get back (issue 15's
side-by-side table). Any family's runs compare the same way.
"""

import os
import sys

from absl import app, flags

from ml_resnet_tf.analysis import savings
from ml_resnet_tf.cli import common
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.nets import odenet
from ml_resnet_tf.runs.records import load_results
from ml_resnet_tf.training.config import DEFAULTS

flags.DEFINE_list("model_dirs", [], "Run folders written by experiments.train.")
FLAGS = flags.FLAGS


def row(model_dir: str, results: dict, which: str) -> str:
    cycles = results["cycles"]
    path = " → ".join(odenet.format_blocks(c["blocks_per_stage"]) for c in cycles)
    errors = " / ".join(f"{100 * c['test_error']:.2f}" for c in cycles if "test_error" in c)
    seconds = savings.accuracy_over_time(results, which)[-1][0]
    flags = {**DEFAULTS, **results["flags"]}
    grows = cycles[0]["blocks_per_stage"] != cycles[-1]["blocks_per_stage"]
    restart = (f"{flags['interpolation_rule'] if grows else '-'}"
               f"{', warm-up ' + format(flags['restart_warmup'], 'g') if flags['restart_warmup'] else ''}"
               f"{', restart at lr ' + format(flags['restart_lr_max'], 'g') if flags['restart_lr_max'] else ''}"
               f"{', BN ' + str(flags['bn_reestimate']) if flags['bn_reestimate'] else ''}"
               f"{'' if flags['lr_restart'] else ', no LR restart'}")
    return (f"| {os.path.basename(os.path.normpath(model_dir))} | {results['flags'].get('model', '?')} | {path} | "
            f"{cycles[-1]['params']:,} | {errors} | {100 * results['epochs'][-1]['test_error']:.2f} | "
            f"{seconds / 60:.1f} | {restart} | {savings.format_recoveries(savings.recoveries(results))} | "
            f"{results['status']} |")


def main(argv):
    reject_positional(argv)
    with common.one_line_errors():
        found = [(d, load_results(d)) for d in FLAGS.model_dirs]
    missing = [d for d, results in found if not results or not results["epochs"]]
    if not FLAGS.model_dirs or missing:
        print(f"error: --model_dirs: {', '.join(missing) or 'none given'}: no run with a finished epoch; "
              "pass folders written by experiments.train", file=sys.stderr)
        sys.exit(1)
    which = savings.clock(*(results for _, results in found))
    print(f"| run | model | blocks per cycle | params | test error % per cycle | final test error % | train minutes "
          f"({which} clock) | "
          "restart | interpolations: test acc. before -> after -> after one epoch (epochs to recover) | status |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: | --- | --- | --- |")
    for model_dir, results in found:
        print(row(model_dir, results, which))


if __name__ == "__main__":
    app.run(main)
