"""A run's directory: ``results.json``, the latest checkpoint and the final model.

Layout of ``model_dir``::

    results.json               flags, per-epoch and per-cycle records, status (running, finished, failed)
    .lock                      flock'ed by the one process training into the folder (``folder.lock``)
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

import json
import os
import uuid

import keras

from ml_resnet_tf.runs import parts, schema
from ml_resnet_tf.runs.parts import CHECKPOINTS, FINAL_MODEL, PARTIAL, RESULTS

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
        return cls(model_dir, schema.new(flags, TIME_NOTE, uuid.uuid4().hex))

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
        try:
            schema.validate(self.results)
        except schema.SchemaError as error:  # never write what a reader would refuse, e.g. a NaN
            raise RunError(f"{self.model_dir}: not writing results.json, whose {error}") from None
        os.makedirs(os.path.join(self.model_dir, CHECKPOINTS), exist_ok=True)
        write_json(os.path.join(self.model_dir, RESULTS), self.results)

    def add_epoch(self, epoch_record, model):
        """Checkpoints ``model`` (with its optimizer), then records the epoch that produced it; keeps
        that checkpoint and the one before, and clears older ones and any a kill left half-written."""
        name = parts.checkpoint_name(epoch_record["epoch"])
        parts.stamp(model, self.results.get("run_id"), epoch_record["epoch"])
        save_model(model, os.path.join(self.model_dir, name))
        kept = {name, self.results["checkpoint"]}
        self.results["epochs"].append(epoch_record)
        self.results["checkpoint"] = name
        self.save()
        folder = os.path.join(self.model_dir, CHECKPOINTS)
        for stale in set(os.listdir(folder)) - {os.path.basename(k) for k in kept if k}:
            if parts.is_own_file(stale):  # whatever else is there is not ours to delete
                os.remove(os.path.join(folder, stale))

    def load_checkpoint(self, log=print):
        """The latest checkpoint's model, checked against this run (``parts.check``); if it cannot be
        read, the one before, with the records cut back to that epoch (so that epoch is trained again).
        RunError if neither can be read, or if one reads but is not this run's."""
        epoch = self.epochs_done
        latest = self._latest_checkpoint()
        try:
            return self.read_part(latest, epoch)
        except RunError as error:
            earlier = parts.checkpoint_name(epoch - 1)
            if isinstance(error.__cause__, parts.ForeignPart) or epoch < 2 \
                    or not os.path.isfile(os.path.join(self.model_dir, earlier)):
                raise
            log(f"warning: {error}; resuming from {earlier}, the checkpoint before it, and retraining epoch {epoch}")
            model = self.read_part(earlier, epoch - 1)
            self.results["epochs"] = self.results["epochs"][:epoch - 1]
            self.results["checkpoint"] = earlier
            return model

    def check_checkpoint(self) -> None:
        """Refuses, before anything is written, a latest checkpoint that is not this run's (its archive's
        config alone: ``parts.peek``); one that cannot be read is left to ``load_checkpoint``."""
        if not self.epochs_done:
            return
        path = os.path.join(self.model_dir, self._latest_checkpoint())
        found = parts.peek(path)
        if found is not None:
            try:
                parts.check(found, self.results, path, self.epochs_done)
            except parts.PartError as error:
                raise _refused(error) from None

    def _latest_checkpoint(self) -> str:
        """Where the latest checkpoint is, by the folder's layout; RunError if results.json says otherwise."""
        latest = parts.checkpoint_name(self.epochs_done)
        if self.results["checkpoint"] != latest:
            raise RunError(f"{self.model_dir}/{RESULTS} names the checkpoint {self.results['checkpoint']!r}, but "
                           f"this run's after epoch {self.epochs_done} is {latest}: restore it, or move the folder "
                           "away")
        return latest

    def read_part(self, name: str, epoch: int) -> keras.Model:
        """The model file ``name`` of this run, checked to be its net after ``epoch``; RunError if not."""
        path = os.path.join(self.model_dir, name)
        try:
            model = parts.read_model(path)
            parts.check(model, self.results, path, epoch)
        except parts.PartError as error:
            raise _refused(error) from error  # load_checkpoint reads the cause: foreign or unreadable
        return model

    def finish(self, model, final):
        parts.stamp(model, self.results.get("run_id"), self.epochs_done)
        save_model(model, os.path.join(self.model_dir, FINAL_MODEL))
        self.results.update(status="finished", final=final)
        self.save()

    def fail(self, failure: str) -> None:
        """Marks the run failed (e.g. diverged), keeping its last good checkpoint and every epoch before."""
        self.results.update(status="failed", failure=failure)
        self.save()


def _refused(error: parts.PartError) -> RunError:
    return RunError(f"{error}: restore the run's own file, or move the folder away")


def load_results(model_dir: str) -> schema.Results | None:
    """A run folder's results.json, or None where the run has not started. A file that is there but
    cannot be read or is not valid (a NaN, a missing key) is a RunError naming it: it is never taken
    for an absent run, nor printed as a result."""
    path = os.path.join(model_dir, RESULTS)
    return read_results(path) if os.path.exists(path) else None


def is_finished(model_dir: str) -> bool:
    """Whether ``model_dir`` holds a finished run."""
    return (load_results(model_dir) or {}).get("status") == "finished"


def load_model(path: str) -> keras.Model:
    """A model file (``parts.read_model``), with a one-line RunError saying what is wrong with it."""
    try:
        return parts.read_model(path)
    except parts.PartError as error:
        raise RunError(f"{error}: move it away, or use an earlier copy") from None


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
    if not record.epochs_done:
        raise RunError(f"{model_dir} has not finished an epoch yet: nothing trained to analyse")
    if record.finished:
        return record.read_part(FINAL_MODEL, record.epochs_done), results, os.path.join(model_dir, FINAL_MODEL)
    return record.load_checkpoint(), results, os.path.join(model_dir, results["checkpoint"])


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
