"""The schema of ``results.json``, versioned and typed: what every reader of a run may rely on.

The records are ``TypedDict``s, so readers keep plain JSON access (``results["final"]["test_error"]``)
with types a checker understands. ``records`` is the one module that reads and writes the file,
and it passes every payload through :func:`load` (upgrade an older version, then validate) and
:func:`validate` (before each write), so a reader never meets a missing key or a wrong type.

Versions: 1 had no ``schema_version`` (and, in its first runs, no ``startup_seconds``); 2 adds
``schema_version`` and each epoch's ``block_scalars`` (a family's per-block scalars, e.g. LM-ResNet's
``k``); 3 adds each epoch's ``ensemble`` (the effective depth, ``ml_resnet_tf.analysis.ensemble``), the branch
gains and scales inside ``block_scalars``, and each cycle's ``gains_at_start`` (before its first step:
at initialisation, or just after an interpolation); older runs get ``None`` and ``{}`` there; 4 adds
``data``, what the run trains and tests on (a digest of the images and labels) and every folder it read
them from, which an older run gains when it next resumes; 5 adds ``sessions``, one per process that
trained the run (the epoch it began from, the Keras backend and version, the replicas), which an
older run begins with its next resume; 6 adds ``run_id``, which every model file of the run carries
(``runs.parts``), and ``family``, the net's family (older runs: ``None``, checked by their net alone);
7 adds every time's process-CPU twin (``train_cpu_seconds``, ``startup_cpu_seconds``, an
interpolation's ``cpu_seconds``), the clock that another process on the machine cannot skew; older
runs get ``None`` there, and their readers fall back to wall time and say so; and each session's
``device`` (cpu, gpu, tpu), since on an accelerator the CPU clock counts only the host's share.
Every float is finite: a NaN or an infinity, written by hand or by a bug, is refused with its key (a
diverged run records no epoch past its last finite one, and says so in ``failure``).
:func:`upgrade` fills what an older file lacks, so every finished run stays readable.
"""

from __future__ import annotations

import math
import typing
from typing import TypedDict

SCHEMA_VERSION = 7


class SchemaError(ValueError):
    """A results.json does not have this schema; the message names the field."""


class EnsembleDepth(TypedDict):
    """``ensemble.depth_summary`` of the epoch's branch gains."""

    num_blocks: int
    mean_depth: float
    relative_depth: float
    std_depth: float
    short_fraction: float


class Epoch(TypedDict):
    epoch: int
    cycle: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    test_error: float
    learning_rate: float
    train_seconds: float
    startup_seconds: float
    train_cpu_seconds: float | None
    startup_cpu_seconds: float | None
    residual_norms: dict[str, float]
    block_scalars: dict[str, dict[str, float]]
    ensemble: EnsembleDepth | None


class _CycleStart(TypedDict):
    cycle: int
    start_epoch: int
    end_epoch: int
    blocks_per_stage: list[int]
    step_size: float
    params: int
    xla: bool
    gains_at_start: dict[str, float]


class Cycle(_CycleStart, total=False):
    """A cycle as it opens; its summary fields are added when it closes."""

    train_seconds: float
    startup_seconds: float
    train_cpu_seconds: float | None
    startup_cpu_seconds: float | None
    test_error: float


class Interpolation(TypedDict):
    cycle: int
    epoch: int
    from_blocks: list[int]
    to_blocks: list[int]
    from_step_size: float
    to_step_size: float
    seconds: float
    cpu_seconds: float | None
    test_accuracy_before: float
    test_accuracy_after: float
    top1_agreement: float
    relative_logit_change: float


class DataRecord(TypedDict):
    """The images a run trains and tests on: a resumed run must see the same ones."""

    sha256: str  # of the training and test images and labels, after --train_subset
    train_images: int
    test_images: int
    sources: list[str]  # every folder (or tensorflow_datasets) it read them from, first first


class Session(TypedDict):
    """One process's share of a run: a run may resume under another backend or on other devices."""

    from_epoch: int
    backend: str
    keras: str
    replicas: int
    device: str | None  # cpu, gpu or tpu: what the CPU clock means (schema 7; older: None)


class Final(TypedDict):
    test_error: float
    test_accuracy: float
    train_seconds: float
    startup_seconds: float
    train_cpu_seconds: float | None
    startup_cpu_seconds: float | None


class _ResultsRequired(TypedDict):
    schema_version: int
    status: str  # "running" or "finished"
    flags: dict
    time_note: str
    cycles: list[Cycle]
    interpolations: list[Interpolation]
    epochs: list[Epoch]
    checkpoint: str | None
    sessions: list[Session]


class Results(_ResultsRequired, total=False):
    final: Final  # once finished
    failure: str  # once failed: what went wrong, in one line
    data: DataRecord  # from its first start (schema 4; an older run gains it when it resumes)
    family: str  # the net's family, from its first cycle (schema 6)
    run_id: str | None  # set by new() and by upgrade(): None for a run begun before schema 6


STATUSES = ("running", "finished", "failed")


def new(flags: dict, time_note: str, run_id: str | None = None) -> Results:
    """The results of a run that has not trained yet."""
    return {"schema_version": SCHEMA_VERSION, "status": "running", "flags": flags, "time_note": time_note,
            "cycles": [], "interpolations": [], "epochs": [], "checkpoint": None, "sessions": [], "run_id": run_id}


def upgrade(payload: dict) -> dict:
    """An older version's payload in the current schema (in place; returned for convenience)."""
    if not isinstance(payload, dict):
        raise SchemaError(f"the file holds a {type(payload).__name__}, not a run's results object")
    version = payload.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SchemaError(f"schema_version {version!r} is newer than this code's {SCHEMA_VERSION}: "
                          "upgrade ml_resnet_tf to read it")
    epochs = payload.get("epochs")
    for epoch in epochs if isinstance(epochs, list) else []:
        if isinstance(epoch, dict):
            epoch.setdefault("startup_seconds", 0.0)
            epoch.setdefault("block_scalars", {})
            epoch.setdefault("ensemble", None)
            _no_cpu_clock(epoch)
    cycles = payload.get("cycles")
    for cycle in cycles if isinstance(cycles, list) else []:
        if isinstance(cycle, dict):
            cycle.setdefault("gains_at_start", {})
            if "train_seconds" in cycle:
                _no_cpu_clock(cycle)
    changes = payload.get("interpolations")
    for change in changes if isinstance(changes, list) else []:
        if isinstance(change, dict):
            change.setdefault("cpu_seconds", None)
    if isinstance(payload.get("final"), dict):
        _no_cpu_clock(payload["final"])
    payload.setdefault("sessions", [])
    for session in payload["sessions"] if isinstance(payload["sessions"], list) else []:
        if isinstance(session, dict):
            session.setdefault("device", None)
    payload.setdefault("run_id", None)
    payload["schema_version"] = SCHEMA_VERSION
    return payload


def _no_cpu_clock(record: dict) -> None:
    """Before schema 7 a time was taken on the wall clock only."""
    record.setdefault("train_cpu_seconds", None)
    record.setdefault("startup_cpu_seconds", None)


def load(payload) -> Results:
    """``payload`` read from disk, upgraded and validated; raises SchemaError naming the bad field."""
    validate(upgrade(payload))
    return payload


def validate(results: dict) -> None:
    """Raises SchemaError naming the first field that is missing or of the wrong type."""
    _check(results, Results, "results")
    if results["status"] not in STATUSES:
        raise SchemaError(f"status is {results['status']!r}, not one of {', '.join(STATUSES)}")
    if results["status"] == "finished" and "final" not in results:
        raise SchemaError("a finished run needs its 'final' record")
    if results["status"] == "failed" and "failure" not in results:
        raise SchemaError("a failed run needs its 'failure' line")


def _check(value, kind, where):
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if typing.is_typeddict(kind):
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be an object, got {type(value).__name__}")
        hints = typing.get_type_hints(kind)
        for key in kind.__required_keys__:
            if key not in value:
                raise SchemaError(f"{where} lacks {key!r}")
        for key, hint in hints.items():
            if key in value:
                _check(value[key], hint, f"{where}.{key}")
    elif origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            _check(item, args[0], f"{where}[{index}]")
    elif origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be an object, got {type(value).__name__}")
        for key, item in value.items():
            if args:
                _check(item, args[1], f"{where}.{key}")
    elif args:  # a union such as str | None, or a record | None
        for option in args:
            try:
                return _check(value, option, where)
            except SchemaError:
                continue
        raise SchemaError(f"{where} must be {kind}, got {value!r}")
    elif not _matches(value, kind):
        raise SchemaError(f"{where} must be {kind.__name__}, got {type(value).__name__}")
    elif kind is float and not math.isfinite(value):
        raise SchemaError(f"{where} is {value}, not a finite number")


def _matches(value, kind) -> bool:
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)
