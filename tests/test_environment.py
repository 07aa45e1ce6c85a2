"""The environment is input too, and an error line stands alone: real processes, as a user starts them.

These run ``python -m experiments.train`` as a new process (not through the fork server, which has
imported TensorFlow already), so TensorFlow's C++ start-up would show here if it were not caught.
"""

import os
import subprocess
import sys

import pytest

from tests import helpers

STRAY = ("TF_CONFIG", "KERAS_BACKEND", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
         "CUDA_VISIBLE_DEVICES", "TF_CPP_MIN_LOG_LEVEL", "ML_RESNET_TF_TF_LOGS")


def train(tmp_path, *args, **env):
    """``python -m experiments.train`` in a fresh process with ``env`` over a clean environment."""
    clean = {k: v for k, v in os.environ.items() if k not in STRAY}
    return subprocess.run([sys.executable, "-m", "experiments.train", f"--model_dir={tmp_path / 'run'}", *args],
                          cwd=helpers.ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300)


CLUSTER = '{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 0}}'
# Read before TensorFlow is imported (experiments/__init__.py): exits in a fraction of its start-up.
BEFORE_IMPORT = [
    ({"TF_CONFIG": "{bad json"}, "error: TF_CONFIG is not valid JSON (Expecting property name enclosed in double "
                                 "quotes at character 1): fix it, or unset it"),
    ({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}'},
     "error: TF_CONFIG's task 'worker' #3 is not in its cluster (worker: 1): fix the task"),
    ({"TF_CONFIG": '["worker"]'}, 'error: TF_CONFIG needs "cluster" and "task" objects'),
    ({"KERAS_BACKEND": "tensorfow"}, "error: KERAS_BACKEND='tensorfow' is not one we train under: set it to "
                                     "tensorflow, jax, torch, or unset it"),
    ({"OMP_NUM_THREADS": "four"}, "error: OMP_NUM_THREADS='four' must be a whole number of threads, at least 1"),
    ({"TF_NUM_INTRAOP_THREADS": "0"}, "error: TF_NUM_INTRAOP_THREADS='0' must be a whole number of threads"),
    ({"CUDA_VISIBLE_DEVICES": "gpu0"}, "error: CUDA_VISIBLE_DEVICES='gpu0' is not a comma-separated list of GPU "
                                       "indices or UUIDs"),
]


@pytest.mark.parametrize("env, line", BEFORE_IMPORT, ids=[next(iter(e)) + str(i) for i, (e, _) in
                                                          enumerate(BEFORE_IMPORT)])
def test_a_bad_environment_variable_is_one_line_before_anything_starts(tmp_path, env, line):
    result = train(tmp_path, "--model=resnet8", **env)
    assert result.returncode == 1 and result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(line) and len(result.stderr) < 200 and not (tmp_path / "run").exists()


def test_the_line_is_alone_and_short_with_tensorflow_started(tmp_path, tiny_cifar10):
    unknown = train(tmp_path, "--model=vgg16")  # refused after TensorFlow started: its C++ log is caught
    assert unknown.returncode == 1 and unknown.stderr.splitlines() == [
        "error: --model: unknown model 'vgg16': use a preset or a depth name such as resnet110, lm_resnet56 or "
        "hamiltonian74 (python -m experiments.models lists them all)"]
    assert len(unknown.stderr) < 200
    # A strategy that cannot be what was asked is refused, never replaced: a cluster without the strategy
    # that reads it, and (in test_bad_input) the strategy without its cluster.
    ignored = train(tmp_path, f"--data_dir={tiny_cifar10}", "--model=resnet8", "--epochs=1", "--interpolate_at=",
                    TF_CONFIG=CLUSTER)
    assert ignored.returncode == 1 and ignored.stderr.splitlines() == [
        "error: --strategy=default: TF_CONFIG is set, and this strategy would ignore the cluster it names: pass "
        "--strategy=multi_worker, or unset TF_CONFIG"]
    assert not (tmp_path / "run").exists()
    # Asked for, TensorFlow's start-up log comes back.
    loud = train(tmp_path, "--model=resnet15", ML_RESNET_TF_TF_LOGS="1", TF_CPP_MIN_LOG_LEVEL="0")
    assert loud.returncode == 1 and len(loud.stderr.splitlines()) > 1 and "I0000" in loud.stderr
