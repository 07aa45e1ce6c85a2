"""Datasets: the offline binary layouts, tfds (mocked), and the deterministic pipeline."""

import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds

from ml_resnet_tf.training import data
from tests import helpers


def test_reads_cifar10_layout(tmp_path):
    written = helpers.write_cifar10(tmp_path, num_train=50, num_test=20)
    loaded = data.load("cifar10", str(tmp_path))
    train = [written[f"data_batch_{i}.bin"] for i in range(1, 6)]
    np.testing.assert_array_equal(loaded.train_images, np.concatenate([t[0] for t in train]))
    np.testing.assert_array_equal(loaded.train_labels, np.concatenate([t[1] for t in train]))
    np.testing.assert_array_equal(loaded.test_images, written["test_batch.bin"][0])
    assert loaded.train_labels.dtype == np.int32 and loaded.source.endswith("cifar-10-batches-bin")


def test_reads_cifar100_layout_with_fine_labels(tmp_path):
    written = helpers.write_cifar100(tmp_path, num_train=120, num_test=30)
    loaded = data.load("cifar100", str(tmp_path / "cifar-100-binary"))  # the folder itself works too
    np.testing.assert_array_equal(loaded.train_images, written["train.bin"][0])
    np.testing.assert_array_equal(loaded.train_labels, written["train.bin"][1])
    assert loaded.train_labels.max() == 99 and loaded.spec.num_classes == 100


def test_reads_stl10_layout(tmp_path):
    written = helpers.write_stl10(tmp_path, num_train=6, num_test=4)
    loaded = data.load("stl10", str(tmp_path))
    np.testing.assert_array_equal(loaded.train_images, written["train"][0])
    np.testing.assert_array_equal(loaded.test_labels, written["test"][1])
    assert loaded.train_images.shape == (6, 96, 96, 3) and loaded.spec.pad == 12 and loaded.spec.batch_size == 32


def test_train_subset_keeps_the_first_images(tmp_path):
    helpers.write_cifar10(tmp_path, num_train=50, num_test=10)
    full, subset = data.load("cifar10", str(tmp_path)), data.load("cifar10", str(tmp_path), train_subset=7)
    np.testing.assert_array_equal(subset.train_images, full.train_images[:7])
    assert len(subset.test_images) == 10


def test_truncated_file_is_one_clear_error(tmp_path):
    helpers.write_cifar10(tmp_path, num_train=50, num_test=10)
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(data.DataError, match="test_batch.bin is truncated") as error:
        data.load("cifar10", str(tmp_path))
    assert "\n" not in str(error.value)


def test_missing_offline_dataset_says_how_to_provide_it(tmp_path):
    with pytest.raises(data.DataError) as error:
        data.load("cifar100", str(tmp_path), download=False)
    message = str(error.value)
    assert "cifar-100-binary/" in message and "--data_dir" in message and "\n" not in message


def test_download_without_a_network_fails_at_once_and_says_how_to_go_offline(tmp_path, monkeypatch):
    # Port 9 on loopback refuses at once: a host that cannot be reached, without needing a network.
    spec = dataclasses.replace(data.DATASETS["cifar10"], archive_url="http://127.0.0.1:9/cifar-10-binary.tar.gz")
    monkeypatch.setitem(data.DATASETS, "cifar10", spec)
    with pytest.raises(data.DataError) as error:
        data.load("cifar10", str(tmp_path / "tfds"), download=True)
    assert str(error.value).startswith("CIFAR-10: cannot reach 127.0.0.1 to download it (Connection refused). "
                                       "Pass --data_dir=DIR with cifar-10-batches-bin/ in DIR, unpacked from "
                                       "cifar-10-binary.tar.gz (http://127.0.0.1:9/"), str(error.value)
    assert not (tmp_path / "tfds" / "cifar10").exists()


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("cifar100", (32, 32, 3)), ("stl10", (96, 96, 3))])
def test_tensorflow_datasets_path(name, shape, monkeypatch):
    monkeypatch.setattr(data, "_require_network", lambda url: None)  # mock_data stands in for the network
    with tfds.testing.mock_data(num_examples=6):
        loaded = data.load(name, download=True)
    assert loaded.source == "tensorflow_datasets"
    assert loaded.train_images.shape == (6,) + shape and loaded.train_images.dtype == np.uint8
    assert loaded.test_labels.shape == (6,) and loaded.test_labels.dtype == np.int32


def batches(dataset):
    return [(x, y) for x, y in dataset.as_numpy_iterator()]


def test_pipeline_is_a_function_of_seed_and_epoch():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8), np.arange(50, dtype=np.int32)
    whole = batches(data.train_dataset(images, labels, 4, 10, seed=3, epochs=range(0, 3)))
    resumed = batches(data.train_dataset(images, labels, 4, 10, seed=3, epochs=range(2, 3)))
    other_seed = batches(data.train_dataset(images, labels, 4, 10, seed=4, epochs=range(0, 1)))
    assert len(whole) == 15 and len(resumed) == 5
    for (x, y), (rx, ry) in zip(whole[10:], resumed):
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)
    assert sorted(np.concatenate([y for _, y in whole[:5]])) == list(range(50))  # an epoch is a permutation
    assert not np.array_equal(whole[0][1], whole[5][1])  # each epoch reshuffles
    assert not np.array_equal(whole[0][1], other_seed[0][1])


def test_augmentation_pads_crops_flips_and_standardizes():
    image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(1, 32, 32, 3)
    images, labels = np.repeat(image, 64, axis=0), np.zeros(64, np.int32)
    x, _ = batches(data.train_dataset(images, labels, 4, 64, seed=0, epochs=range(0, 1)))[0]
    assert x.shape == (64, 32, 32, 3)
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(1, 2, 3)), 1, atol=1e-3)
    padded = np.pad(image[0], [(4, 4), (4, 4), (0, 0)])
    crops = np.stack([padded[dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)])
    candidates = data.standardize(np.concatenate([crops, crops[:, :, ::-1]])).numpy()
    matches = [int(np.argmin(np.abs(candidates - v).max(axis=(1, 2, 3)))) for v in x]
    for v, m in zip(x, matches):  # every output is a standardized crop of the padded image, maybe flipped
        np.testing.assert_allclose(v, candidates[m], atol=1e-4)
    assert len(set(matches)) > 10 and min(matches) < 81 <= max(matches)  # varied crops, both flips


def test_test_pipeline_keeps_order_and_the_last_batch():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (25, 32, 32, 3), dtype=np.uint8), np.arange(25, dtype=np.int32)
    result = batches(data.test_dataset(images, labels, 10))
    assert [len(y) for _, y in result] == [10, 10, 5]
    np.testing.assert_array_equal(np.concatenate([y for _, y in result]), labels)
    np.testing.assert_allclose(result[0][0], data.standardize(images[:10]).numpy(), rtol=1e-6)
