"""Shared fixtures: quiet TensorFlow, seeded Keras, generated and real dataset folders."""

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

from tests import helpers  # noqa: E402

SHARED_CIFAR10 = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def tiny_cifar10(tmp_path_factory):
    """A generated CIFAR-10 folder in the standard binary layout: 200 train, 100 test images."""
    root = tmp_path_factory.mktemp("tiny_cifar10")
    helpers.write_cifar10(root, num_train=200, num_test=100)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_cifar10):
    """A ResNet-8 (1-1-1) trained for one epoch on generated images."""
    from ml_resnet_tf.training.config import TrainConfig
    from ml_resnet_tf.training.trainer import train

    model_dir = tmp_path_factory.mktemp("runs") / "resnet8"
    train(TrainConfig(str(model_dir), data_dir=str(tiny_cifar10), model="resnet8", epochs=1, interpolate_at=(),
                      batch_size=50), verbose=0, log=lambda line: None)
    return model_dir


@pytest.fixture(scope="session")
def real_cifar10(tmp_path_factory):
    """The real CIFAR-10 from ../shared, written by its prepare.py into the standard layout."""
    if not (SHARED_CIFAR10 / "prepare.py").is_file():
        pytest.skip(f"real CIFAR-10 not found at {SHARED_CIFAR10}")
    root = tmp_path_factory.mktemp("real_cifar10")
    subprocess.run([sys.executable, str(SHARED_CIFAR10 / "prepare.py"), str(root)], check=True,
                   stdout=subprocess.DEVNULL)
    return root


# The tests that take a minute or more (tests' durations, `pytest --durations`), started first so that two
# workers end together instead of one waiting out a three-minute test at the end (with `--dist worksteal`).
LONGEST_FIRST = ("test_table3_harness", "test_kills_at_every_phase", "test_two_workers_match_one",
                 "test_multilevel_run_on_real_cifar10", "test_jax_resumes_a_tensorflow_run",
                 "test_data_parallel_over_two_xla_host_devices", "test_memory_efficient_gradients_equal_autodiff",
                 "test_mirrored_strategy_on_two_cpus", "test_memory_bench_reports_both_modes",
                 "test_multilevel_memory_efficient_hamiltonian")


def pytest_collection_modifyitems(items):
    def rank(item):
        return next((i for i, name in enumerate(LONGEST_FIRST) if item.name.startswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order
