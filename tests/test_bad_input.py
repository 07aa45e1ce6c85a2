"""Bad input to every binary, table-driven: each command line below must end with exit status 1, one
line on stderr that names the problem (the fragment given) and how to fix it, no traceback, and no
file under the test's folder added, changed or removed. ``docs/reliability.md`` lists what is covered.

Each binary runs once per case as ``python -m`` would run it; ``tests/bad_input_driver.py`` imports it
once and forks per case, so about a hundred cases cost seconds each, not TensorFlow's import each.
Placeholders: ``{w}`` the world (see :func:`world`), ``{data}`` generated CIFAR-10 in it, ``{trained}``
a trained one-epoch run in it.
"""

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from ml_resnet_tf.training import data
from ml_resnet_tf.training.config import TrainConfig
from tests import helpers

RESUMABLE = ["--model=resnet8", "--epochs=2", "--interpolate_at=", "--batch_size=50"]  # the flags of {w}/resumable
CASES = {
    "experiments.train": [
        (["--model_dir={w}/new", "--epochs=0"], "--epochs must be positive"),
        (["--model_dir={w}/new", "--model=resnet15"], "unknown model 'resnet15'"),
        (["--model_dir={w}/new", "--model=resnet", "--interpolate_at="],
         "--model=resnet is a family: give --start_blocks"),
        (["--model_dir={w}/new", "--start_blocks=2,2,2", "--interpolate_at=60"],
         "interpolates 2 times but --interpolate_at=60"),
        (["--model_dir={w}/new", "--start_blocks=two"], "--start_blocks takes whole numbers"),
        (["--model_dir={w}/new", "--dataset=imagenet"], "value should be one of"),
        (["--model_dir={w}/new", "--mixed_precision=float64"], "value should be one of"),
        (["--model_dir={w}/new", "--interpolate_at=110,60"], "must be increasing epochs"),
        (["--model_dir={w}/new", "--interpolate_at=0,2", "--epochs=4"],
         "--interpolate_at=0,2 must be increasing epochs between 1 and"),
        (["--model_dir={w}/new", "--epochs=20", "--scale=0.05", "--interpolate_at=5,10"], "(--scale=0.05 makes them"),
        (["--model_dir={w}/new", "--lr_max=inf"], "--lr_max must be a finite number, got inf"),
        (["--model_dir={w}/new", "--weight_decay=nan"], "--weight_decay must be a finite number, got nan"),
        (["--model_dir={w}/new", "--lr_min=1"], "--lr_min=1.0 is above --lr_max=0.5"),
        (["--model_dir={w}/new", "--momentum=1"], "--momentum must be below 1"),
        (["--model_dir={w}/new", "--interpolation_rule=cubic"], "value should be one of"),
        (["--model_dir={w}/new", "--restart_warmup=60"], "--restart_warmup=60 must be shorter than the shortest"),
        (["--model_dir={w}/new", "--stochastic_depth=0"], "--stochastic_depth is p_L, in (0, 1]"),
        (["--model_dir={w}/new", "--steps_per_execution=0"], "--steps_per_execution must be at least 1"),
        (["--model_dir={w}/new", "--scale=0"], "--scale must be positive"),
        (["--model_dir={w}/new", "--batch_size=-1"], "--batch_size must not be negative"),
        (["--model_dir={w}/new", "--seed=-1"], "--seed must be a whole number from 0 to 2147483647, got -1"),
        (["--model_dir={w}/new", "--seed=99999999999"], "--seed must be a whole number from 0 to 2147483647"),
        (["--model_dir={w}/new", "--epochs=abc"], "flag --epochs=abc: invalid literal"),
        (["--model_dir={w}/new", "--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
        (["--model_dir={w}/new", "--flagfile={w}/nowhere.cfg"], "Unable to open flagfile"),
        (["--model_dir={w}/new", "--model=resnet14", "--memory_efficient"],
         "--memory_efficient recomputes activations from the inverse, which resnet has not"),
        (["--model_dir={w}/new", "stray", "words"], "unexpected argument 'stray' (and 1 more): every option is a flag"),
        (["--model=resnet14"], "--model_dir"),
        (["--model_dir={w}/new", "--data_dir={w}/empty", "--nodownload"], "CIFAR-10: not prepared"),
        (["--model_dir={w}/new", "--data_dir={data}", "--model=resnet8", "--batch_size=1000"],
         "--batch_size=1000 is larger than the 200 training images"),
        (["--model_dir={w}/new", "--data_dir={data}", "--train_subset=500"],
         "--train_subset=500 is more than the 200 training images"),
        (["--model_dir={w}/new", "--data_dir={w}/badlabels"], "outside 0-9: these are not CIFAR-10 files"),
        (["--model_dir={w}/new", "--data_dir={w}/cutshort", "--model=resnet8"],
         "data_batch_2.bin holds 20 images, the other training files 40: it is cut short"),
        (["--model_dir={w}/new", "--data_dir={w}/ragged", "--model=resnet8"],
         "is truncated or not a 3073-byte-record file"),
        (["--model_dir={w}/finished", "--epochs=200"], "holds a run with --epochs=160, not 200"),
        (["--model_dir={w}/failed"], "holds a run that failed (diverged in epoch 3"),
        (["--model_dir={w}/listjson"], "is not a run's results (the file holds a list"),
        (["--model_dir={w}/garbled"], "cannot read"),
        (["--model_dir={w}/newer"], "is newer than this code's"),
        (["--model_dir={w}/stranger"], "exists and holds no results.json: choose a new or empty --model_dir"),
        (["--model_dir={w}/file"], "exists and holds no results.json"),
        (["--model_dir={w}/file/run", "--data_dir={data}", "--model=resnet8"], "(Not a directory)"),
        (["--model_dir={w}/resumable", "--data_dir={w}/otherdata", *RESUMABLE],
         "/otherdata/cifar-10-batches-bin (200 training and 100 test images) differ from those"),
        (["--model_dir={w}/new", "--strategy=tpu"], "--strategy=tpu:"),
        (["--model_dir={w}/new", "--data_dir={data}", "--model=resnet8", "--strategy=multi_worker"],
         "--strategy=multi_worker: reads the cluster from TF_CONFIG, which is not set"),
        # Flags that would do nothing (ml_resnet_tf.training.noops), typed on the command line.
        (["--model_dir={w}/new", "--epochs=2", "--interpolate_at=", "--restart_warmup=0.5"],
         "--restart_warmup=0.5 cannot act on this run: the learning rate never restarts"),
        (["--model_dir={w}/new", "--interpolation_rule=zero"], "--interpolation_rule=zero cannot act on this run: "
                                                               "the run never interpolates"),
        (["--model_dir={w}/new", "--bn_reestimate=10"], "--bn_reestimate=10 cannot act on this run"),
        (["--model_dir={w}/new", "--sync_batch_norm"], "--sync_batch_norm cannot act on this run: --strategy=default"),
        (["--model_dir={w}/new", "--jit_compile=true", "--deterministic"],
         "--jit_compile=true cannot act on this run: Keras turns XLA off under --deterministic"),
        (["--model_dir={w}/new", "--lr_scaling=linear"], "--lr_scaling=linear cannot act on this run: the global "
                                                         "batch is the paper's"),
        (["--model_dir={w}/new", "--epochs=2", "--interpolate_at=", "--restart_lr_max=0.1"],
         "--restart_lr_max=0.1 cannot act on this run: the learning rate never restarts"),
        (["--model_dir={w}/new", "--restart_lr_max=0.0001"], "--lr_min=0.001 is above --restart_lr_max=0.0001"),
        (["--model_dir={w}/new", "--epochs=2", "--interpolate_at=", "--nolr_restart"],
         "--nolr_restart cannot act on this run: the run has one cycle"),
        (["--model_dir={w}/new", "--nolr_restart", "--interpolate_at=10,20"],
         "--interpolate_at=10,20 cannot act on this run: with --nolr_restart a baseline has no cycle boundary"),
    ],
    "experiments.reproduce": [
        (["--table=5"], "value should be one of"),
        (["--datasets=mnist"], "--datasets"),
        (["--scale=0"], "--scale must be positive"),
        (["--train_subset=-1"], "--train_subset must not be negative"),
        (["--notrain", "--results_dir={w}/file"], "is a file, not a folder: choose another --results_dir"),
        (["--notrain", "--runs_dir={w}/nowhere", "--results_dir={w}/results"], "no runs under"),
        (["table3"], "unexpected argument 'table3'"),
    ],
    "experiments.figures": [
        (["--figures=5"], "--figures takes a comma-separated subset"),
        (["--datasets=mnist"], "--datasets"),
        (["--seeds=0"], "--seeds must be at least 1"),
        (["--num_images=-1"], "--num_images must not be negative"),
        (["--notrain", "--figures=9", "--results_dir={w}/file"],
         "is a file, not a folder: choose another --results_dir"),
        (["--notrain", "--figures=9", "--runs_dir={w}/nowhere", "--results_dir={w}/results"],
         "or drop --notrain to train them"),
        (["9"], "unexpected argument '9'"),
    ],
    "experiments.headline": [
        (["--rules=cubic"], "--rules takes a comma-separated subset of copy,linear,zero"),
        (["--rules="], "--rules takes a comma-separated subset"),
        (["--restart_warmup=5"], "--restart_warmup must be in [0, 3) epochs"),
        (["--notrain", "--runs_dir={w}/nowhere", "--results_dir={w}/results"], "or drop --notrain to train them"),
        (["--notrain", "--results_dir={w}/file"], "is a file, not a folder: choose another --results_dir"),
        (["copy"], "unexpected argument 'copy'"),
        (["--seeds=0"], "--seeds must be between 1 and 100"),
        (["--cycle_epochs=0"], "--cycle_epochs must be at least 1"),
        (["--bn_reestimate=-1"], "--bn_reestimate must not be negative"),
        (["--cycle_split=2,3"], "--cycle_split takes three positive whole numbers of epochs"),
        (["--cycle_split=2,3,4", "--cycle_epochs=5"], "--cycle_split and --cycle_epochs both set the cycles"),
        (["--protocol=paper", "--cycle_epochs=5"], "cannot act on --protocol=paper, whose cycles are 60, 50 and 50"),
    ],
    "experiments.headline_curve": [
        (["--cycle_lengths=2,x"], "--cycle_lengths takes positive whole numbers of epochs"),
        (["--notrain", "--runs_dir={w}/nowhere", "--results_dir={w}/results"], "or drop --notrain to train them"),
        (["16"], "unexpected argument '16'"),
    ],
    "experiments.clock_under_load": [
        (["--epochs=0"], "--epochs must be at least 1"),
        (["--notrain", "--runs_dir={w}/nowhere", "--results_dir={w}/results"], "or drop --notrain to train them"),
        (["--notrain", "--results_dir={w}/file"], "is a file, not a folder: choose another --results_dir"),
    ],
    "experiments.interpolate": [
        ([], "--model_dir"),
        (["--model_dir={w}/empty"], "holds no results.json"),
        (["--model_dir={trained}", "--bn_batches=0"], "--bn_batches must be at least 1"),
        (["--model_dir={trained}", "--output_dir={w}/file"], "is a file, not a folder: choose another --output_dir"),
    ],
    "experiments.norms": [
        ([], "--model_dir"),
        (["--model_dir="], "--model_dir needs at least one run folder"),
        (["--model_dir={w}/finished,{w}/broken"], "--output_dir is required with more than one --model_dir"),
        (["--model_dir={w}/broken"], "broken/model.keras is corrupt or cut short"),
        (["--model_dir={w}/empty"], "holds no results.json"),
        (["--model_dir={w}/nowhere"], "nowhere"),
        (["--model_dir={trained}", "--output_dir={w}/file"], "is a file, not a folder: choose another --output_dir"),
        (["--model_dir={trained}", "--num_images=-1"], "--num_images must not be negative"),
        (["--model_dir={trained}", "--data_dir={w}/empty"], "CIFAR-10: "),
        (["--model_dir={trained}", "{trained}"], "unexpected argument"),
    ],
    "experiments.lesion": [
        ([], "--model_dir"),
        (["--model_dir={w}/empty"], "holds no results.json"),
        (["--model_dir={w}/broken"], "broken/model.keras is corrupt or cut short"),
        (["--model_dir={trained}", "--draws=0"], "--draws must be at least 1"),
        (["--model_dir={trained}", "--max_removed=-1"], "--max_removed must not be negative"),
        (["--model_dir={trained}", "--output_dir={w}/file"], "is a file, not a folder: choose another --output_dir"),
        (["--model_dir={trained}", "--data_dir={w}/badlabels"], "outside 0-9"),
    ],
    "experiments.ensemble": [
        (["--model_dir={w}/broken,{w}"], "--output_dir is required with more than one"),
        (["--model_dir={trained}", "--ks=1,x"], "--ks takes comma-separated path lengths"),
        (["--model_dir={trained}", "--ks=2,9"], "--ks: path lengths must lie in 0 ... 3, got [2, 9]"),
        (["--model_dir={trained}", "--path_samples=0"], "--path_samples must be at least 1"),
        (["--model_dir={trained}", "--lesion_draws=-1"], "--lesion_draws must not be negative"),
        (["--model_dir={trained}", "--output_dir={w}/file"], "is a file, not a folder: choose another --output_dir"),
        (["--model_dir={w}/broken"], "broken/model.keras is corrupt or cut short"),
        (["--model_dir={w}", "{w}"], "unexpected argument"),
    ],
    "experiments.bench": [
        (["fast"], "unexpected argument 'fast': every option is a flag"),
        (["--families=vgg"], "--families: unknown vgg; choose from resnet"),
        (["--architectures=2-2-x"], "--architectures"),
        (["--stochastic_depth=0"], "--stochastic_depth is p_L, in (0, 1]"),
        (["--steps=0"], "--steps must be at least 1"),
        (["--backend=mxnet"], "value should be one of"),
        (["--measured_runs={w}/finished"], "pairs"),
        (["--measured_runs={w}/multilevel,{w}/multilevel"], "the second run of a pair must be a baseline"),
        (["--measured_runs={w}/empty,{w}/finished"], "holds no finished run; train it with experiments.train first"),
        (["--measured_runs={w}/baseline,{w}/multilevel"], "the first run of a pair must be the multi-level one"),
        (["--measured_runs={w}/multilevel,{w}/finished"], "the second run of a pair records no cycles"),
        (["--measured_runs={w}/multilevel,{w}/short"], "the baseline must train the multi-level run's last"),
        (["--output={w}/file/bench.json"], "is a file; give a file path in a folder"),
        (["--output={w}/empty"], "is a folder; give a file path in a folder"),
        (["--data_dir={w}/empty"], "CIFAR-10: "),
        (["--reference=torch", "--families=lm_resnet"], "has a PyTorch twin of resnet and wresnet only, not lm_resnet"),
        (["--reference=torch", "--torch_modes=fast"], "--torch_modes takes eager and/or compiled"),
        (["--intra_op_threads=-1"], "--intra_op_threads must be 0 (TensorFlow's default) or more"),
    ],
    "experiments.bench_memory": [
        (["--family=resnet"], "--family=resnet is not a reversible family; choose from hamiltonian"),
        (["--architectures=6-6-6"], "--architectures"),
        (["--repeats=0"], "--repeats must be at least 1"),
        (["--output={w}/file/memory.json"], "is a file; give a file path in a folder"),
        (["memory"], "unexpected argument 'memory'"),
    ],
    "experiments.compare": [
        ([], "--model_dirs: none given"),
        (["--model_dirs={w}/empty"], "no run with a finished epoch"),
        (["runs"], "unexpected argument 'runs'"),
    ],
    "experiments.inverse": [
        (["--families=resnet"], "--families: one of"),
        (["--depths=0"], "--depths are positive integers"),
        (["--dtypes=int8"], "--dtypes: one of"),
        (["--output={w}/file/inverse.json"], "is a file; give a file path in a folder"),
    ],
    "experiments.models": [
        (["--families=vgg"], "--families: choose from resnet, wresnet"),
        (["resnet"], "unexpected argument 'resnet'"),
    ],
}


def _write_run(folder, payload):
    folder.mkdir()
    (folder / "results.json").write_text(payload if isinstance(payload, str) else json.dumps(payload))


@pytest.fixture
def world(tmp_path, tiny_cifar10, trained_run):
    """Folders as a user's disk may hold them: finished, failed, foreign and broken runs, good and bad
    data, a plain file where a folder is expected, and earlier outputs that must survive."""
    w = tmp_path / "world"
    w.mkdir()
    shutil.copytree(tiny_cifar10, w / "data")
    shutil.copytree(trained_run, w / "trained")
    for name in ("badlabels", "cutshort", "ragged", "otherdata"):
        shutil.copytree(tiny_cifar10, w / name)
    raw = w / "badlabels" / "cifar-10-batches-bin" / "test_batch.bin"
    raw.write_bytes(b"\x0c" + raw.read_bytes()[1:])  # the first test label is 12
    for name, keep in (("cutshort", 3073 * 20), ("ragged", 3073 * 20 + 7)):
        raw = w / name / "cifar-10-batches-bin" / "data_batch_2.bin"
        raw.write_bytes(raw.read_bytes()[:keep])
    raw = w / "otherdata" / "cifar-10-batches-bin" / "test_batch.bin"
    raw.write_bytes(raw.read_bytes()[:1] + bytes([raw.read_bytes()[1] ^ 1]) + raw.read_bytes()[2:])
    _write_run(w / "finished", helpers.results_payload())
    failed = helpers.results_payload(status="failed")
    _write_run(w / "failed", {**failed, "failure": "diverged in epoch 3 (loss nan)"})
    _write_run(w / "listjson", "[]")
    _write_run(w / "garbled", "{not json")
    _write_run(w / "newer", {**helpers.results_payload(), "schema_version": 99})
    _write_run(w / "broken", helpers.results_payload())
    (w / "broken" / "model.keras").write_text("not a zip file")
    for name, seconds in (("multilevel", 60.0), ("baseline", 100.0)):
        cycles = [(0, 1, (1, 1, 1)), (1, 2, (2, 2, 2))] if name == "multilevel" else [(0, 2, (2, 2, 2))]
        _write_run(w / name, helpers.results_payload([0.5, 0.6], cycles=cycles, final={"train_seconds": seconds}))
    resumable = TrainConfig(str(w / "resumable"), data_dir=str(w / "data"), model="resnet8", epochs=2,
                            interpolate_at=(), batch_size=50)
    images = data.load("cifar10", str(w / "data"))
    _write_run(w / "resumable", {**helpers.results_payload(status="running", flags=dataclasses.asdict(resumable)),
                                 "data": {"sha256": images.digest(), "train_images": 200, "test_images": 100,
                                          "sources": [images.source]}})
    _write_run(w / "short", helpers.results_payload([0.5], cycles=[(0, 1, (2, 2, 2))]))
    (w / "stranger").mkdir()
    (w / "stranger" / "notes.txt").write_text("someone's notes")
    (w / "empty").mkdir()
    (w / "file").write_text("a file, not a folder")
    (w / "results").mkdir()
    (w / "results" / "table3.md").write_text("an earlier table")
    return w


@pytest.mark.parametrize("module", sorted(CASES))
def test_bad_input_gives_one_line_and_touches_nothing(module, world, tiny_cifar10):
    cases = [[arg.format(w=world, data=world / "data", trained=world / "trained") for arg in args]
             for args, _ in CASES[module]]
    (world.parent / "cases.json").write_text(json.dumps(cases))
    driver = subprocess.run([sys.executable, "-m", "tests.bad_input_driver", module, str(world),
                             str(world.parent / "cases.json")], cwd=helpers.ROOT, capture_output=True, text=True)
    assert driver.returncode == 0, driver.stderr[-3000:]
    failures = []
    for report, (_, message) in zip(json.loads(driver.stdout), CASES[module]):
        lines = helpers.error_lines(report["stderr"])
        expected = message
        if report["code"] != 1 or "Traceback" in report["stderr"] or len(lines) != 1 or expected not in lines[0] \
                or report["touched"]:
            failures.append(f"{report['args']}: exit {report['code']}, touched {report['touched']}, "
                            f"stderr {report['stderr'][-1500:]!r}")
    assert not failures, "\n".join(failures)


def test_the_docs_count_what_the_table_covers():
    text = open(f"{helpers.ROOT}/docs/reliability.md").read()
    for module, cases in CASES.items():
        assert f"| `{module}` | {len(cases)} |" in text
    assert f"Total: {sum(map(len, CASES.values()))} command lines." in text
