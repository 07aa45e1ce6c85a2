"""What the experiment binaries share: one-line errors, scaled-down labels, and a queue of training runs."""

import contextlib
import errno
import os
import subprocess
import sys

from absl import flags

from ml_resnet_tf.runs import parts
from ml_resnet_tf.runs.records import RunError, is_finished
from ml_resnet_tf.training.config import ConfigError
from ml_resnet_tf.training.data import DataError

DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}  # the disk's fault, not the code's


@contextlib.contextmanager
def one_line_errors():
    """Bad input (flags, folders, files) ends the binary with one line on stderr and exit status 1."""
    try:
        yield
    except (ConfigError, DataError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        where = f" writing {error.filename}" if error.filename else ""  # reads are checked where they happen
        print(f"error: {error.strerror}{where}: free space or fix permissions, then rerun the same command "
              "(a run resumes from its last checkpoint)", file=sys.stderr)
        sys.exit(1)


def define_harness_flags(outputs, notrain):
    """The flags every harness shares: where data and runs live, how far runs are scaled down, and
    whether to train. ``outputs`` says what goes in ``--results_dir``, ``notrain`` what
    ``--notrain`` still does."""
    flags.DEFINE_string("data_dir", "", "Passed to every run: offline copies or a tensorflow_datasets data dir.")
    flags.DEFINE_float("scale", 1.0, "Shrink every run's epochs and cycle boundaries by this factor.")
    flags.DEFINE_integer("train_subset", 0, "Train every run on the first N images only; 0 for all.")
    flags.DEFINE_string("runs_dir", "runs", "Where the runs' folders go.")
    flags.DEFINE_string("results_dir", "results", f"Where the {outputs} go.")
    flags.DEFINE_bool("train", True, f"Train what is missing; --notrain only {notrain}.")
    flags.register_validator("scale", lambda scale: scale > 0, "--scale must be positive")
    flags.register_validator("train_subset", lambda n: n >= 0, "--train_subset must not be negative")


def define_analysis_flags(outputs: str) -> None:
    """The flags of an analysis of trained runs: which runs, where their test data and ``outputs`` go,
    and on how many test images."""
    flags.DEFINE_list("model_dir", None, "One or more run folders written by experiments.train, comma-separated.")
    flags.DEFINE_string("output_dir", "", f"Where {outputs} go; default: MODEL_DIR/analysis for one run.")
    flags.DEFINE_string("data_dir", "", "Where the test data are; default: where each run found its own.")
    flags.DEFINE_integer("num_images", 0, "Measure on the first N test images; 0 for all.")
    flags.mark_flag_as_required("model_dir")
    flags.register_validator("model_dir", bool, "--model_dir needs at least one run folder")
    flags.register_validator("num_images", lambda n: n >= 0, "--num_images must not be negative")
    flags.register_multi_flags_validator(
        ["model_dir", "output_dir"], lambda v: bool(v["output_dir"]) or len(v["model_dir"] or []) <= 1,
        "--output_dir is required with more than one --model_dir")


def output_folder(path: str, flag: str) -> str:
    """``path``, created if needed; RunError (one line) where it is a file or cannot be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunError(f"{path} is a file, not a folder: choose another {flag}")
    run = parts.managed_by_run(path)
    if run:
        raise RunError(f"{flag}={path} is inside a run's own folders, which its trainer writes and prunes: choose "
                       "one outside them, such as the default MODEL_DIR/analysis")
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as error:
        raise RunError(f"cannot write into {path} ({error.strerror}): choose another {flag}") from None
    return path


def analysis_dir(model_dir, chosen):
    """``--output_dir``, or ``MODEL_DIR/analysis``: beside the run, never over its results.json."""
    return output_folder(chosen or os.path.join(model_dir, "analysis"), "--output_dir")


def scale_label(scale, train_subset):
    """``-scale0.02-subset2000`` for a scaled-down harness, so its runs and outputs never mix with real ones."""
    return (f"-scale{scale:g}" if scale != 1 else "") + (f"-subset{train_subset}" if train_subset else "")


def scale_note(scale, train_subset, paper_settings):
    """The line under a table or figure: the paper's settings, or a warning that the runs were scaled down."""
    if scale == 1 and not train_subset:
        return paper_settings
    return (f"Scaled-down runs (epochs x{scale:g}" + (f", first {train_subset} training images" if train_subset else "")
            + "): compare them with each other, not with the paper's numbers.")


def train_all(runs, scale, train_subset, data_dir):
    """Runs ``python -m experiments.train`` for each ``(title, model_dir, flags)`` whose run is not finished,
    one after another (an interrupted one resumes). Returns the titles of the runs that failed."""
    failed = []
    for index, (title, model_dir, run_flags) in enumerate(runs, start=1):
        if is_finished(model_dir):
            print(f"[{index}/{len(runs)}] {title}: finished, skipped ({model_dir})", flush=True)
            continue
        command = [sys.executable, "-m", "experiments.train", *run_flags, f"--model_dir={model_dir}",
                   f"--scale={scale}", f"--train_subset={train_subset}"]
        if data_dir:
            command.append(f"--data_dir={data_dir}")
        print(f"[{index}/{len(runs)}] {title}: {' '.join(command[1:])}", flush=True)
        if subprocess.call(command):
            failed.append(title)
    return failed


def require_runs(found: bool, runs_root: str) -> None:
    """With ``--notrain``, a runs folder holding none of the runs asked for is a wrong path, not an empty
    result: refuse it before any table or figure is written over earlier ones."""
    if not found:
        raise RunError(f"no runs under {runs_root}: check --runs_dir, --scale and --train_subset (they name the "
                       "folder), or drop --notrain to train them")


def report_failures(failed):
    if failed:
        print(f"error: {len(failed)} runs failed ({'; '.join(failed)}). Rerun the same command to retry them.",
              file=sys.stderr)
        sys.exit(1)
