"""A run's model files, checkpoints and ``model.keras``: written with their identity, checked when read.

A run folder is copied, moved and edited by hand, so no file is trusted to belong to the run whose
``results.json`` names it. Every model file the trainer writes carries its ``provenance`` (an
``ODENet`` config field): the run's id (``results["run_id"]``, schema 6) and the epoch after which
it was saved. Reading one checks that id, that epoch, and the net itself (family, blocks per stage,
``h``, parameter count) against what ``results.json`` recorded for that epoch; a file saved before
identities existed (schema 5 and older) is checked by the net alone. Paths come from the folder's
own layout, ``checkpoints/epoch_NNNN.keras``, never from wherever a field points.

A file that cannot be used is named for what it is: missing, a folder, unreadable (permissions),
corrupt or cut short (not a whole zip archive), foreign (written by another program or version),
or another run's.
"""

import json
import math
import os
import re
import types
import zipfile

import keras

RESULTS = "results.json"
CHECKPOINTS = "checkpoints"
FINAL_MODEL = "model.keras"
PARTIAL = ".partial-"  # a file being written; left by a kill, it is never read and is cleared later
_CHECKPOINT = re.compile(r"^epoch_(\d{4})\.keras$")
# The folders the trainer writes inside a run folder: checkpoints are pruned, TensorBoard's logs appended.
MANAGED = (CHECKPOINTS, "train", "validation", "dynamics")


class PartError(Exception):
    """A model file of a run cannot be read; the message says what is wrong with it."""


class ForeignPart(PartError):
    """A model file that reads, but is not this run's net at that epoch."""


def checkpoint_name(epoch: int) -> str:
    """``checkpoints/epoch_0003.keras``: the one place a checkpoint of ``epoch`` may be."""
    return os.path.join(CHECKPOINTS, f"epoch_{epoch:04d}.keras")


def checkpoint_epoch(name: str) -> int | None:
    """The epoch of a checkpoint's file name (``epoch_0003.keras`` -> 3), None for any other file."""
    found = _CHECKPOINT.match(os.path.basename(name))
    return int(found.group(1)) if found else None


def is_own_file(name: str) -> bool:
    """Whether ``name`` in ``checkpoints/`` is one the library writes (a checkpoint, or one being
    written): pruning removes these and nothing else."""
    return checkpoint_epoch(name) is not None or os.path.basename(name).startswith(PARTIAL)


def managed_by_run(path: str) -> str | None:
    """The run folder whose managed folder (``MANAGED``) holds ``path``, or None: an output written
    there could be pruned or mixed with the run's own files."""
    here = os.path.realpath(path)
    while os.path.dirname(here) != here:
        parent = os.path.dirname(here)
        if os.path.basename(here) in MANAGED and os.path.isfile(os.path.join(parent, RESULTS)):
            return parent
        here = parent
    return None


def stamp(model: keras.Model, run_id: str | None, epoch: int) -> None:
    """Records in ``model`` which run and epoch a file saved from it belongs to."""
    if hasattr(model, "provenance"):
        model.provenance = {"run_id": run_id, "epoch": epoch}


def read_model(path: str) -> keras.Model:
    """``keras.models.load_model``, with a one-line PartError saying what is wrong with the file."""
    if not os.path.exists(path):
        raise PartError(f"{path} is missing")
    if os.path.isdir(path):
        raise PartError(f"{path} is a folder, not a .keras file")
    if not os.access(path, os.R_OK):
        raise PartError(f"{path} cannot be read (permission denied): fix its permissions")
    if not zipfile.is_zipfile(path):
        raise PartError(f"{path} is corrupt or cut short (not a whole .keras zip archive, {os.path.getsize(path):,} "
                        "bytes)")
    try:
        return keras.models.load_model(path)
    except zipfile.BadZipFile as error:
        raise PartError(f"{path} is corrupt ({error}): a .keras file is a zip archive") from None
    except (OSError, ValueError, TypeError, KeyError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise PartError(f"{path} is foreign: not a model this version of ml_resnet_tf wrote ({reason[:120]})") \
            from None


def peek(path: str):
    """What a model file says of itself (its ``spec`` and ``provenance``, from the archive's config),
    without building it: for checking a part before anything is written. None where it cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json")).get("config", {})
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return types.SimpleNamespace(spec=config.get("spec") or {}, provenance=config.get("provenance") or {})


def _trainable_params(model) -> int:
    return int(sum(math.prod(v.shape) for v in model.trainable_variables))


def check(model: keras.Model, results: dict, path: str, epoch: int) -> None:
    """Raises ForeignPart unless ``model``, read from ``path``, is this run's net after ``epoch``."""
    mine = getattr(model, "provenance", {}) or {}
    run_id = results.get("run_id")
    if mine.get("run_id") and run_id and mine["run_id"] != run_id:
        raise ForeignPart(f"{path} belongs to another run (id {mine['run_id'][:8]}), not this folder's "
                        f"({run_id[:8]})")
    if "epoch" in mine and mine["epoch"] != epoch:
        raise ForeignPart(f"{path} holds the model after epoch {mine['epoch']}, not after epoch {epoch}")
    cycle = next((c for c in results["cycles"] if c["start_epoch"] < epoch <= c["end_epoch"]), None)
    spec = getattr(model, "spec", {}) or {}
    expected = {"family": results.get("family")}
    if cycle:
        expected.update(blocks_per_stage=cycle["blocks_per_stage"], step_size=cycle["step_size"])
    for key, value in expected.items():
        found = spec.get(key)
        if value is None or found is None:
            continue
        if (list(found) if isinstance(found, (list, tuple)) else found) != value:
            raise ForeignPart(f"{path} is a {key} {_show(found)} net, but the run's epoch {epoch} trained "
                            f"{_show(value)}")
    if cycle and cycle.get("params") and hasattr(model, "trainable_variables") \
            and _trainable_params(model) != cycle["params"]:
        raise ForeignPart(f"{path} has {_trainable_params(model):,} trainable parameters, but the run's epoch {epoch} "
                        f"trained {cycle['params']:,}")


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)
