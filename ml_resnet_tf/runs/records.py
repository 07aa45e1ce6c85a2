"""A run's directory: ``results.json``, the latest checkpoint and the final model.

Layout of ``model_dir``::

    results.json               flags, per-epoch and per-cycle records, status (running, finished, failed)
    .lock                      flock'ed by the one process training into the folder (``lock``)
    checkpoints/epoch_NNNN.keras  model + optimizer state after the two last finished epochs
    model.keras                the final model, once the run is finished
    train/ validation/ dynamics/  TensorBoard event files

``results.json`` follows ``schema`` (versioned, typed); this is the one module that reads and
writes it. Every file is written atomically (a temporary file, fsync, rename), results.json after
the checkpoint it points to is complete, so a kill at any moment leaves a consistent pair to
resume from. The checkpoint before the latest is kept too: if the latest cannot be read (a disk
fault, a copy cut short), the run resumes from the one before and retrains that epoch. A directory
that holds something else, or a run with other flags, is refused rather than overwritten.
"""

import contextlib
import fcntl
import json
import os
import shutil
import zipfile

import keras

from ml_resnet_tf.runs import schema

RESULTS = "results.json"
FINAL_MODEL = "model.keras"
PARTIAL = ".partial-"  # a file being written; left by a kill, it is never read and is cleared later
LOCK = ".lock"  # held (flock) by the process training into the folder; the kernel drops it if that process dies
# Flags that may differ when a run resumes: where the data lives, and how the same steps are
# compiled, dispatched and recomputed (--memory_efficient), do not change the run.
RESUMABLE_CHANGES = frozenset({"data_dir", "download", "model_dir", "jit_compile", "steps_per_execution",
                               "data_threads", "intra_op_threads", "inter_op_threads", "memory_efficient"})
TIME_NOTE = ("train_seconds count training steps and interpolations only: evaluation, "
             "checkpointing and logging are excluded, as in the paper's 'Time'. startup_seconds "
             "count apart what the first step of each fit takes beyond a steady step (opening the "
             "input pipeline, tracing the training step), a fixed cost that does not grow with the epochs")


class RunError(Exception):
    """The model_dir cannot be used as asked; the message says why and what to do."""


def _replace(tmp: str, path: str) -> None:
    """Moves the complete file ``tmp`` over ``path``, durably: data, then the rename."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_json(path: str, payload) -> None:
    """Writes JSON atomically: a reader sees the old file or the new one, never half."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    _replace(tmp, path)


def save_model(model: keras.Model, path: str) -> None:
    """``model.save(path)`` atomically (Keras needs the ``.keras`` suffix on the temporary file too)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{PARTIAL}{name}")
    model.save(tmp)
    _replace(tmp, path)


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise RunError(f"cannot read {path} ({error}); move it away to start a new run there") from None


def read_results(path: str) -> schema.Results:
    """A results.json, upgraded to the current schema and validated; RunError names a bad field."""
    try:
        return schema.load(read_json(path))
    except schema.SchemaError as error:
        raise RunError(f"{path} is not a run's results ({error}); move it away to start a new run there") from None


class RunRecord:
    """The results of one run, kept in sync with its directory."""

    def __init__(self, model_dir, results):
        self.model_dir = model_dir
        self.results = results

    @classmethod
    def open(cls, model_dir, flags, defaults=None):
        """Resumes the run in ``model_dir`` or starts a new one, written on its first ``save``.

        Raises RunError, touching nothing, when the directory holds other files
        or a run with different ``flags``. A flag the stored run predates counts as
        its value in ``defaults``, so adding a flag does not strand older runs.
        """
        flags = json.loads(json.dumps(flags))  # compare as stored: tuples become lists
        path = os.path.join(model_dir, RESULTS)
        if os.path.isfile(path):
            results = read_results(path)
            old = {**json.loads(json.dumps(defaults or {})), **results.get("flags", {})}
            changed = sorted(k for k in set(old) | set(flags)
                             if k not in RESUMABLE_CHANGES and old.get(k) != flags.get(k))
            if changed:
                k = changed[0]
                raise RunError(
                    f"{model_dir} holds a run with --{k}={_show(old.get(k))}, not {_show(flags.get(k))}"
                    f"{f' (and {len(changed) - 1} more flags)' if len(changed) > 1 else ''}: "
                    "pass its flags to resume it, or choose a new --model_dir")
            return cls(model_dir, results)
        if os.path.exists(model_dir) and (not os.path.isdir(model_dir) or set(os.listdir(model_dir)) - {LOCK}):
            raise RunError(f"{model_dir} exists and holds no {RESULTS}: choose a new or empty --model_dir")
        return cls(model_dir, schema.new(flags, TIME_NOTE))

    @property
    def finished(self):
        return self.results["status"] == "finished"

    @property
    def failed(self):
        return self.results["status"] == "failed"

    @property
    def epochs_done(self):
        return len(self.results["epochs"])

    def use_data(self, images, log) -> None:
        """Records the data (a ``data.ImageData``) a new run starts on; checks that a resumed run gets
        the same ones.

        ``--data_dir`` may change on resume (the data moved to another disk): the same images are
        the same run, and the new folder is logged and recorded. Other images are refused, since
        they would silently make a different run.
        """
        digest = images.digest()
        known = self.results.get("data")
        if known is None:
            self.results["data"] = {"sha256": digest, "train_images": len(images.train_images),
                                    "test_images": len(images.test_images), "sources": [images.source]}
            return
        if known["sha256"] != digest:
            raise RunError(
                f"the data in {images.source} ({len(images.train_images):,} training and {len(images.test_images):,} "
                f"test images) differ from those {self.model_dir} began on in {known['sources'][-1]} "
                f"({known['train_images']:,} and {known['test_images']:,}): pass that --data_dir to resume it, "
                "or choose a new --model_dir")
        if images.source != known["sources"][-1]:
            log(f"note: the same data, now read from {images.source} (was {known['sources'][-1]}); "
                "recorded in results.json")
            known["sources"].append(images.source)

    def save(self):
        schema.validate(self.results)
        os.makedirs(os.path.join(self.model_dir, "checkpoints"), exist_ok=True)
        write_json(os.path.join(self.model_dir, RESULTS), self.results)

    def add_epoch(self, epoch_record, model):
        """Checkpoints ``model`` (with its optimizer), then records the epoch that produced it; keeps
        that checkpoint and the one before, and clears older ones and any a kill left half-written."""
        name = os.path.join("checkpoints", f"epoch_{epoch_record['epoch']:04d}.keras")
        save_model(model, os.path.join(self.model_dir, name))
        kept = {name, self.results["checkpoint"]}
        self.results["epochs"].append(epoch_record)
        self.results["checkpoint"] = name
        self.save()
        folder = os.path.join(self.model_dir, "checkpoints")
        for stale in set(os.listdir(folder)) - {os.path.basename(k) for k in kept if k}:
            os.remove(os.path.join(folder, stale))

    def load_checkpoint(self, log=print):
        """The latest checkpoint's model; if it cannot be read, the one before, with the records cut
        back to that epoch (so that epoch is trained again). RunError if neither can be read."""
        latest = self.results["checkpoint"] or ""
        try:
            return self._load(latest)
        except RunError as error:
            epoch = self.epochs_done - 1
            earlier = os.path.join("checkpoints", f"epoch_{epoch:04d}.keras")
            if epoch < 1 or not os.path.isfile(os.path.join(self.model_dir, earlier)):
                raise
            log(f"warning: {error}; resuming from {earlier}, the checkpoint before it, and retraining epoch "
                f"{epoch + 1}")
            model = self._load(earlier)
            self.results["epochs"] = self.results["epochs"][:epoch]
            self.results["checkpoint"] = earlier
            return model

    def _load(self, name):
        path = os.path.join(self.model_dir, name)
        if not os.path.isfile(path):
            raise RunError(f"{path} is missing, so {self.model_dir} cannot resume; "
                           "move the directory away to start the run again")
        return load_model(path)

    def finish(self, model, final):
        save_model(model, os.path.join(self.model_dir, FINAL_MODEL))
        self.results.update(status="finished", final=final)
        self.save()

    def fail(self, failure: str) -> None:
        """Marks the run failed (e.g. diverged), keeping its last good checkpoint and every epoch before."""
        self.results.update(status="failed", failure=failure)
        self.save()


@contextlib.contextmanager
def lock(model_dir: str):
    """Holds ``model_dir``'s lock for the ``with`` block, or raises RunError if another process holds it.
    An advisory ``flock``: released when the block ends or the process dies, so it never goes stale."""
    try:
        os.makedirs(model_dir, exist_ok=True)
        handle = open(os.path.join(model_dir, LOCK), "a")
    except OSError as error:
        raise RunError(f"cannot write into {model_dir} ({error.strerror}): choose a --model_dir you can write to") \
            from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunError(f"another process is training into {model_dir}: wait for it to end, "
                       "or choose another --model_dir") from None
    try:
        yield
    finally:
        handle.close()  # closing drops the lock


def copy_run(model_dir: str, into: str) -> None:
    """Copies what a run resumes from, ``results.json`` and its checkpoints, from ``model_dir`` into
    the folder ``into``; copies nothing where no run has started yet. A non-chief worker of a
    cluster resumes from the chief's folder this way, writing only its own copy."""
    if os.path.isfile(os.path.join(model_dir, RESULTS)):
        shutil.copy2(os.path.join(model_dir, RESULTS), into)
        if os.path.isdir(os.path.join(model_dir, "checkpoints")):
            shutil.copytree(os.path.join(model_dir, "checkpoints"), os.path.join(into, "checkpoints"),
                            ignore=shutil.ignore_patterns(f"{PARTIAL}*"), dirs_exist_ok=True)


def load_results(model_dir: str) -> schema.Results | None:
    """A run folder's results.json, or None where the run has not started (or its file is unreadable)."""
    try:
        return read_results(os.path.join(model_dir, RESULTS))
    except RunError:
        return None


def is_finished(model_dir: str) -> bool:
    """Whether ``model_dir`` holds a finished run."""
    return (load_results(model_dir) or {}).get("status") == "finished"


def load_model(path: str) -> keras.Model:
    """``keras.models.load_model``, with a one-line RunError for a file this code cannot read."""
    try:
        return keras.models.load_model(path)
    except zipfile.BadZipFile as error:
        raise RunError(f"{path} is corrupt ({error}): a .keras file is a zip archive; move it away, or "
                       "resume from an earlier copy") from None
    except (OSError, ValueError, TypeError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise RunError(f"cannot load {path} ({reason[:200]}); was it written by another version of "
                       "ml_resnet_tf?") from None


def load_trained(model_dir: str) -> tuple:
    """A run's trained model and results: ``model.keras`` when finished, else its latest checkpoint.

    Returns ``(model, results, path)``. Raises RunError with what to pass instead.
    """
    path = os.path.join(model_dir, RESULTS)
    if not os.path.isfile(path):
        raise RunError(f"{model_dir} holds no {RESULTS}: pass the --model_dir of a run "
                       "trained with python -m experiments.train")
    results = read_results(path)
    record = RunRecord(model_dir, results)
    if record.finished:
        return load_model(os.path.join(model_dir, FINAL_MODEL)), results, os.path.join(model_dir, FINAL_MODEL)
    if not record.epochs_done:
        raise RunError(f"{model_dir} has not finished an epoch yet: nothing trained to analyse")
    return record.load_checkpoint(), results, os.path.join(model_dir, results["checkpoint"])


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
