"""CIFAR-10, CIFAR-100 and STL-10: loading and the ``tf.data`` input pipeline (Appendix A).

Images are loaded once into memory as uint8 arrays (the largest, STL-10's test
set, is 221 MB), either through ``tensorflow_datasets`` or, on machines without
internet, from the datasets' standard binary layouts in ``--data_dir``.

The training pipeline is a pure function of ``(seed, epoch, image index)``: the
epoch's order and every crop and flip come from stateless random ops. A run that
resumes at epoch ``e`` therefore sees exactly the batches an uninterrupted run
would, and parallel augmentation stays deterministic.
"""

import dataclasses
import hashlib
import os
import socket
import urllib.parse

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging


class DataError(Exception):
    """A dataset cannot be found or read; the message says how to provide it."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the paper fixes per dataset (Appendix A, Section 5.2)."""

    name: str
    title: str
    num_classes: int
    image_shape: tuple
    pad: int  # zeros padded on each side before the random crop
    batch_size: int
    offline_dir: str  # the standard binary layout's folder
    archive_url: str  # where tensorflow_datasets downloads it from; unpacked, it holds offline_dir

    @property
    def offline_hint(self) -> str:
        return f"{os.path.basename(self.archive_url)} ({self.archive_url})"


DATASETS = {
    "cifar10": DatasetSpec("cifar10", "CIFAR-10", 10, (32, 32, 3), 4, 100, "cifar-10-batches-bin",
                           "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"),
    "cifar100": DatasetSpec("cifar100", "CIFAR-100", 100, (32, 32, 3), 4, 100, "cifar-100-binary",
                            "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"),
    "stl10": DatasetSpec("stl10", "STL-10", 10, (96, 96, 3), 12, 32, "stl10_binary",
                         "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"),
}


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A dataset in memory: uint8 NHWC images and int32 labels."""

    spec: DatasetSpec
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str

    def digest(self) -> str:
        """SHA-256 of every image and label, in order: equal digests mean the same data, wherever they
        were read from (under a second for CIFAR)."""
        sha = hashlib.sha256()
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            sha.update(np.ascontiguousarray(array).tobytes())
        return sha.hexdigest()


def _read_records(path, header, image_bytes):
    """Fixed-length records of ``header`` label bytes then one CHW image."""
    if not os.path.isfile(path):
        raise DataError(f"{path} is a folder, not a data file" if os.path.isdir(path) else f"missing {path}")
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as error:  # reading, not writing: the disk handler's "writing ..." would mislead
        raise DataError(f"cannot read {path} ({error.strerror}): fix its permissions") from None
    record = header + image_bytes
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{path} is truncated or not a {record}-byte-record file ({raw.size} bytes)")
    raw = raw.reshape(-1, record)
    return raw[:, :header], raw[:, header:]


def _read_cifar(folder, files, header):
    labels, images = zip(*(_read_records(os.path.join(folder, f), header, 3072) for f in files))
    counts = [len(batch) for batch in images]
    for name, count in zip(files, counts):  # CIFAR-10's five training files hold 10,000 images each
        if count != max(counts):
            raise DataError(f"{os.path.join(folder, name)} holds {count} images, the other training files "
                            f"{max(counts)}: it is cut short; unpack the archive again")
    images = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.concatenate(labels)[:, -1].astype(np.int32)


def _read_stl10(folder, split):
    _, images = _read_records(os.path.join(folder, f"{split}_X.bin"), 0, 3 * 96 * 96)
    labels = np.fromfile(os.path.join(folder, f"{split}_y.bin"), dtype=np.uint8) \
        if os.path.isfile(os.path.join(folder, f"{split}_y.bin")) else None
    if labels is None or len(labels) != len(images):
        raise DataError(f"{folder}/{split}_y.bin is missing or does not match {split}_X.bin")
    # STL-10 stores each image column-major: (3, 96, 96) with x before y.
    images = images.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32) - 1


def _read_offline(spec, folder):
    """The standard binary layouts: cifar-10-batches-bin, cifar-100-binary, stl10_binary."""
    if spec.name == "cifar10":
        train = _read_cifar(folder, [f"data_batch_{i}.bin" for i in range(1, 6)], 1)
        test = _read_cifar(folder, ["test_batch.bin"], 1)
    elif spec.name == "cifar100":
        train, test = _read_cifar(folder, ["train.bin"], 2), _read_cifar(folder, ["test.bin"], 2)
    else:
        train, test = _read_stl10(folder, "train"), _read_stl10(folder, "test")
    return train + test


def _require_network(url, timeout=10.0):
    """One connection attempt to the archive's host: offline, tensorflow_datasets would retry for
    minutes before failing, so a machine without a network fails here, at once."""
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                 timeout=timeout).close()
    except OSError as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise DataError(f"cannot reach {parts.hostname} to download it ({reason})") from None


def _read_tfds(spec, data_dir, download):
    import tensorflow_datasets as tfds  # slow to import; only this source needs it

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # tfds warns that an unprepared folder lacks metadata
    try:
        builder = tfds.builder(spec.name, data_dir=data_dir)
        prepared = builder.is_prepared()
    finally:
        absl_logging.set_verbosity(verbosity)
    if not prepared:
        if not download:
            raise DataError("not prepared for tensorflow_datasets and --nodownload is set")
        print(f"{spec.title} is not in {data_dir or '~/tensorflow_datasets'}: downloading it with "
              "tensorflow_datasets (pass --data_dir with an offline copy to skip this)", flush=True)
        _require_network(spec.archive_url)
        try:
            builder.download_and_prepare()
        except Exception as error:  # network, disk and checksum errors all end here
            raise DataError(f"download failed ({type(error).__name__})") from error
    arrays = []
    for split in ("train", "test"):
        # Fixed-size chunks, not batch_size=-1: that needs the split's size in the dataset info.
        chunks = list(tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True).batch(10_000)))
        arrays += [np.concatenate([c[0] for c in chunks]).astype(np.uint8),
                   np.concatenate([c[1] for c in chunks]).astype(np.int32)]
    return arrays


def load(name: str, data_dir: str | None = None, download: bool = True, train_subset: int = 0) -> ImageData:
    """Loads a dataset into memory.

    ``data_dir`` may hold the standard binary layout (e.g. ``DIR/cifar-10-batches-bin/``,
    or be that folder itself); otherwise it is a ``tensorflow_datasets`` data dir.
    ``train_subset`` keeps the first N training images (0 keeps all).

    Raises DataError with one line that says how to provide the data.
    """
    spec = DATASETS[name]
    offline = None
    if data_dir:
        for candidate in (os.path.join(data_dir, spec.offline_dir), data_dir):
            if os.path.basename(os.path.normpath(candidate)) == spec.offline_dir and os.path.isdir(candidate):
                offline = candidate
    try:
        if offline:
            arrays, source = _read_offline(spec, offline), offline
        else:
            arrays, source = _read_tfds(spec, data_dir, download), "tensorflow_datasets"
    except DataError as error:
        raise DataError(f"{spec.title}: {error}. Pass --data_dir=DIR with {spec.offline_dir}/ in DIR, "
                        f"unpacked from {spec.offline_hint}") from None
    train_images, train_labels, test_images, test_labels = arrays
    if train_images.shape[1:] != spec.image_shape:
        raise DataError(f"{spec.title} images in {source} have shape {train_images.shape[1:]}, "
                        f"expected {spec.image_shape}")
    for split, labels in (("training", train_labels), ("test", test_labels)):
        if labels.size and not 0 <= labels.min() <= labels.max() < spec.num_classes:
            raise DataError(f"{spec.title} {split} labels in {source} run from {labels.min()} to {labels.max()}, "
                            f"outside 0-{spec.num_classes - 1}: these are not {spec.title} files")
    if train_subset > len(train_images):
        raise DataError(f"--train_subset={train_subset} is more than the {len(train_images):,} training images in "
                        f"{source}: lower it, or pass 0 for all")
    if train_subset:
        train_images, train_labels = train_images[:train_subset], train_labels[:train_subset]
    return ImageData(spec, train_images, train_labels, test_images, test_labels, source)


def standardize(images) -> tf.Tensor:
    """Per-image standardization (Appendix A): zero mean, unit variance per image."""
    return tf.image.per_image_standardization(tf.cast(images, tf.float32))


def train_dataset(images: np.ndarray, labels: np.ndarray, pad: int, batch_size: int, seed: int, epochs: range,
                  threads: int = 0) -> tf.data.Dataset:
    """Augmented training batches for ``epochs`` (0-based: ``range(first, end)``).

    Appendix A: zero-pad ``pad`` pixels, random crop back to size, random
    horizontal flip, per-image standardization. Each epoch is a fresh permutation;
    the last partial batch is dropped so every epoch has ``len(images) // batch_size``
    steps.

    Augmentation works on whole batches: each epoch draws one crop offset and one flip
    per image of the dataset, and a batch gathers its images' draws, so a crop and a flip
    are two index lookups for the whole batch. Per-image ``map`` calls took 5x the CPU
    time (134 against 28 us an image on CIFAR-10), CPU that the model needs where the same
    cores train it (docs/performance.md). The images stay in memory as one tensor (decoded
    once by ``load``, so there is nothing left to cache); ``threads`` batches are augmented
    in parallel, 0 for one per core. Order and augmentation do not depend on it. tf.data's
    autotuner is off (:func:`without_autotune`).
    """
    n = len(images)
    steps = n // batch_size
    images, labels = tf.constant(images), tf.constant(labels)
    height, width = images.shape[1:3]

    def epoch_batches(epoch):
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order_key, crop_key, flip_key = tf.unstack(tf.random.experimental.stateless_split(key, 3))
        order = tf.argsort(tf.random.stateless_uniform([n], seed=order_key))[:steps * batch_size]
        offsets = tf.random.stateless_uniform([n, 2], seed=crop_key, maxval=2 * pad + 1, dtype=tf.int32)
        flips = tf.random.stateless_uniform([n], seed=flip_key) < 0.5

        def batches(values):  # each image's values, in the epoch's order, one row per batch
            values = tf.gather(values, order)
            return tf.reshape(values, [steps, batch_size] + values.shape[1:].as_list())

        return tf.data.Dataset.from_tensor_slices((batches(tf.range(n)), batches(offsets), batches(flips)))

    def augment(index, offset, flip):
        rows = offset[:, :1] + tf.range(height)
        cols = offset[:, 1:] + tf.where(flip[:, None], tf.range(width - 1, -1, -1), tf.range(width))
        batch = tf.pad(tf.gather(images, index), [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        batch = tf.gather(tf.gather(batch, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        return standardize(batch), tf.gather(labels, index)

    return without_autotune(tf.data.Dataset.range(epochs.start, epochs.stop)
                            .flat_map(epoch_batches)
                            .map(augment, num_parallel_calls=threads or os.cpu_count(), deterministic=True)
                            .prefetch(PREFETCH))


def test_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Test batches: standardized only, in order, the last batch kept."""
    return without_autotune(tf.data.Dataset.from_tensor_slices((images, labels))
                            .batch(batch_size)
                            .map(lambda x, y: (standardize(x), y), num_parallel_calls=os.cpu_count())
                            .prefetch(PREFETCH))


PREFETCH = 2  # batches ready ahead of the step: one being consumed, one waiting


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with tf.data's autotuner off, so that dropping an iterator does not stall.

    The autotuner's thread wakes on a doubling period (10 ms, 20 ms, ... 5.12 s, ...), and
    destroying an iterator waited for its next wake-up: on this project's 2-core machine a
    ``fit`` over a 20-step epoch returned on that clock, 10.2 s after it began, 0.2-3.6 s after its
    last step (docs/performance.md, "Using the cores"). Keras drops an iterator at the end of every
    ``fit`` and every evaluation. Parallelism and prefetch depth are set explicitly instead; the
    pipeline delivers many times what the model consumes either way.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
