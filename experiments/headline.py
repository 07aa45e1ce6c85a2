"""The headline: a multi-level run against its last-cycle model under the same cycles, on real data, over seeds.

    python -m experiments.headline [--data_dir=DIR] [--train_subset=2000] [--rules=copy,zero] [--seeds=3]
                                   [--cycle_epochs=3] [--budget] [--restart_warmup=0.5]      (make headline)

ResNet-26 on CIFAR-10 (``experiments/configs/headline/base.cfg``): three cycles of ``--cycle_epochs``
epochs under the paper's cosine restarts (Eq. 9), multi-level 1-1-1 -> 2-2-2 -> 4-4-4 with each
``--rules`` rule, against a fixed 4-4-4 with the same restarts (``ml_resnet_tf.paper.headline``). Per
rule, as mean ± standard deviation over ``--seeds`` seeds, each gap taken within a seed:

* accuracy at equal epochs (both runs' last epoch);
* accuracy at equal training time, on the CPU clock that another process cannot skew
  (``analysis.savings.clock``): the baseline's accuracy at the last epoch it had finished by then;
* the same at equal block-epochs (blocks times epochs, the bound's cost model), and with ``--budget``
  against a 4-4-4 trained on its own full schedule at that budget (an annealed model, not a snapshot);
* the time saved against the block-count bound of Section 4.2; a saving above the bound is printed as
  the measurement error it is;
* for the first seed, each interpolation's accuracy before, right after and after one epoch.

``--protocol=paper`` runs Section 5.2 itself (ResNet-50-i, 2-2-2 -> 8-8-8, against ResNet-50; 160 epochs
restarting at 60 and 110; ``experiments/configs/headline/paper.cfg``): a GPU job, ``make headline-paper``;
``--scale`` shrinks it for a smoke test. It runs unchanged under ``KERAS_BACKEND=jax``.

Runs go under ``--runs_dir/headline[-paper][-subsetN]-cycleL/seedS/``, outputs to
``--results_dir/headline[...].{md,json,png}``. Finished runs are skipped and interrupted ones resume.
"""

import dataclasses
import os

from absl import app, flags

from ml_resnet_tf.analysis import savings
from ml_resnet_tf.cli import common, headline_flags
from ml_resnet_tf.cli.usage import reject_positional
from ml_resnet_tf.paper import headline, plotting
from ml_resnet_tf.runs import records

flags.DEFINE_integer("cycle_epochs", 3, "Epochs per cycle (three cycles); the paper's are 60, 50 and 50.")
flags.DEFINE_bool("budget", False, "Also train the last-cycle model on its own schedule for the multi-level run's "
                                    "block-epochs.")
flags.DEFINE_list("cycle_split", [], "Epochs of each of the three cycles, e.g. 2,3,4 (the budget split between "
                                    "cycles); instead of --cycle_epochs.")
flags.DEFINE_enum("protocol", "headline", ["headline", "paper"], "headline: ResNet-26 in three --cycle_epochs cycles; "
                  "paper: Section 5.2's ResNet-50-i against ResNet-50, 160 epochs restarting at 60 and 110.")
flags.register_validator("cycle_epochs", lambda n: n >= 1, "--cycle_epochs must be at least 1")
flags.register_validator("cycle_split",
                         lambda v: not v or (len(v) == 3 and all(x.isdigit() and int(x) >= 1 for x in v)),
                         "--cycle_split takes three positive whole numbers of epochs, e.g. 2,3,4")
flags.register_multi_flags_validator(["cycle_split", "cycle_epochs"],
                                     lambda v: not v["cycle_split"] or v["cycle_epochs"] == 3,
                                     "--cycle_split and --cycle_epochs both set the cycles: give one")
flags.register_multi_flags_validator(["protocol", "cycle_epochs", "cycle_split"],
                                     lambda v: v["protocol"] == "headline" or (v["cycle_epochs"] == 3
                                                                                and not v["cycle_split"]),
                                     "--cycle_epochs and --cycle_split cannot act on --protocol=paper, whose cycles "
                                     "are 60, 50 and 50 epochs: drop them (--scale shrinks them)")
FLAGS = flags.FLAGS
NETS = {"headline": "ResNet-26", "paper": "ResNet-50-i against ResNet-50, Section 5.2"}


def main(argv):
    reject_positional(argv)
    if FLAGS.protocol == "paper":
        label = "-paper" + headline_flags.label(FLAGS)
        plan = headline.paper_plan(os.path.join(FLAGS.runs_dir, f"headline{label}"), tuple(FLAGS.rules),
                                   FLAGS.seeds, FLAGS.budget)
        plan = dataclasses.replace(plan, extra=headline_flags.extra(FLAGS)[0],
                                   multilevel_extra=headline_flags.extra(FLAGS)[1])
    else:
        split = tuple(int(x) for x in FLAGS.cycle_split)
        label = headline_flags.label(FLAGS) + ("-split" + "-".join(map(str, split)) if split
                                               else f"-cycle{FLAGS.cycle_epochs}")
        plan = headline.Plan(os.path.join(FLAGS.runs_dir, f"headline{label}"), tuple(FLAGS.rules), FLAGS.seeds,
                             FLAGS.cycle_epochs, FLAGS.budget, *headline_flags.extra(FLAGS), cycles=split)
    planned = headline.runs(plan)
    with common.one_line_errors():
        results_dir = common.output_folder(FLAGS.results_dir, "--results_dir")
        failed, found = headline_flags.train_and_load(planned, FLAGS)
        rows = headline.pairs(planned, found)
        common.require_runs(bool(rows), plan.root)
        summaries = headline.summarise(rows)
        text = headline.table(summaries, rows)
        note = common.scale_note(FLAGS.scale, FLAGS.train_subset, "All 50,000 CIFAR-10 training images.")
        note += f" {'/'.join(map(str, plan.lengths))} epochs per cycle; seeds: {FLAGS.seeds}."
        stem = os.path.join(results_dir, f"headline{label}")
        with open(f"{stem}.md", "w") as f:
            f.write(f"# Multi-level against the last-cycle model ({NETS[FLAGS.protocol]}, CIFAR-10)\n\n{note}\n\n"
                    f"{text}\n")
        records.write_json(f"{stem}.json", {"note": note, "runs": [run.folder for run in planned], "rows": rows,
                                            "summaries": summaries})
        first = [(run.title, found[run.folder]) for run in planned if run.seed == 0 and run.arm != "budget"
                 and (found[run.folder] or {}).get("status") == "finished"]
        which = savings.clock(*(r for _, r in first))
        plotting.headline_figure(f"{stem}.png", [(title, savings.accuracy_over_time(r, which),
                                                  [c["epoch"] for c in r["interpolations"]]) for title, r in first],
                                 f"{note} First seed; {which} clock.", NETS[FLAGS.protocol])
    print(text)
    print(f"wrote {stem}.md, {stem}.json and {stem}.png")
    common.report_failures(failed)


if __name__ == "__main__":
    app.run(main)
