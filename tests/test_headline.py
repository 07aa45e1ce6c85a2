"""``make headline``'s harness on finished runs: the table's numbers, the plot, and what it refuses."""

import json
import os

from ml_resnet_tf.nets import costs
from tests import helpers

BASELINE = [0.3, 0.4, 0.5, 0.55, 0.6, 0.62, 0.66, 0.7, 0.72]
MULTILEVEL = [0.3, 0.4, 0.5, 0.45, 0.55, 0.6, 0.58, 0.65, 0.7]


def write_run(folder, accuracies, blocks, seconds, interpolations=(), rule="copy"):
    cycles = [(0, 3, blocks[0]), (3, 6, blocks[1]), (6, 9, blocks[2])]
    payload = helpers.results_payload(accuracies, cycles=cycles, flags={"interpolation_rule": rule},
                                      final={"train_seconds": sum(seconds) + 0.5 * len(interpolations)})
    for index, (epoch, value) in enumerate(zip(payload["epochs"], seconds)):
        epoch["train_seconds"], epoch["cycle"] = value, index // 3 + 1
    payload["interpolations"] = [
        {"cycle": c, "epoch": e, "from_blocks": [1] * 3, "to_blocks": [2] * 3, "from_step_size": 1.0,
         "to_step_size": 0.5, "seconds": 0.5, "test_accuracy_before": before, "test_accuracy_after": after,
         "top1_agreement": 0.5, "relative_logit_change": 0.5} for c, e, before, after in interpolations]
    os.makedirs(folder)
    (folder / "results.json").write_text(json.dumps(payload))


def test_the_headline_table_from_finished_runs(tmp_path):
    root = tmp_path / "runs" / "headline-subset2000"
    write_run(root / "baseline", BASELINE, [(4, 4, 4)] * 3, [4.0] * 9)
    write_run(root / "multilevel-copy", MULTILEVEL, [(1, 1, 1), (2, 2, 2), (4, 4, 4)],
              [1.0] * 3 + [2.0] * 3 + [4.0] * 3, [(2, 3, 0.5, 0.3), (3, 6, 0.6, 0.4)])
    result = helpers.run_module("experiments.headline", "--notrain", "--train_subset=2000", "--rules=copy,zero",
                                f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-2000:]
    bound = costs.time_saved([3, 3, 3], [3, 6, 12])
    # 22 s against 36 s; at 22 s the baseline had finished its fifth epoch (20 s): 60.00%.
    # In block-epochs the multi-level run cost 3*3 + 3*6 + 3*12 = 63, the baseline 12 per epoch: five epochs (60).
    row = (f"| copy | 70.00% | 72.00% | -2.00 | 60.00% | +10.00 | 60.00% | +10.00 | {1 - 22 / 36:.1%} | {bound:.1%} | "
           f"{(1 - 22 / 36) / bound:.0%} | 50.0% -> 30.0% -> 45.0% (2); 60.0% -> 40.0% -> 58.0% (2) |")
    assert row in result.stdout
    assert "copy: equal time: >= 1 point ahead met, equal epochs: within 1 point MISSED, time saved >= 95% of " \
           "the block bound MISSED" in result.stdout
    assert row in (tmp_path / "out" / "headline-subset2000.md").read_text()
    (saved,) = json.loads((tmp_path / "out" / "headline-subset2000.json").read_text())["rows"]
    assert saved["interpolations"][0] == {"epoch": 3, "before": 0.5, "after": 0.3, "after_first_epoch": 0.45,
                                          "epochs_to_recover": 2}
    assert os.path.getsize(tmp_path / "out" / "headline-subset2000.png") > 10_000


def test_the_headline_without_its_runs_writes_nothing(tmp_path):
    result = helpers.run_module("experiments.headline", "--notrain", f"--runs_dir={tmp_path / 'runs'}",
                                f"--results_dir={tmp_path / 'out'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert helpers.error_lines(result.stderr) == [f"error: no runs under {tmp_path / 'runs' / 'headline'}: check "
                                                  "--runs_dir, --scale and --train_subset (they name the folder), "
                                                  "or drop --notrain to train them"]
    assert os.listdir(tmp_path / "out") == []
