"""Operations on a whole run folder: the lock that lets one process at a time train into it, and the copy
a cluster's non-chief worker resumes from."""

import contextlib
import fcntl
import os
import shutil

from ml_resnet_tf.runs.parts import CHECKPOINTS, PARTIAL, RESULTS
from ml_resnet_tf.runs.records import LOCK, RunError


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
        if os.path.isdir(os.path.join(model_dir, CHECKPOINTS)):
            shutil.copytree(os.path.join(model_dir, CHECKPOINTS), os.path.join(into, CHECKPOINTS),
                            ignore=shutil.ignore_patterns(f"{PARTIAL}*"), dirs_exist_ok=True)
