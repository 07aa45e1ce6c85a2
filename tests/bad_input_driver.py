"""``python -m tests.bad_input_driver MODULE WORLD CASES.json``: runs one binary on many command lines.

The binary is imported once (TensorFlow's import is most of a binary's start-up); each command line
then runs in a child forked from that process, so its flags are parsed afresh and nothing leaks from
one case to the next. A child is ``python -m MODULE ARGS`` less the import: ``app.run(main)`` with
its own argv, stdout and stderr. Prints, per case, the exit status, stderr, and the files under
WORLD that the case added, changed or removed.
"""

import hashlib
import importlib
import json
import os
import signal
import sys
import tempfile

from absl import app

from ml_resnet_tf.runs.records import LOCK
from tests.fork_server import exit_status

CASE_SECONDS = 180  # a case still running after this is killed (SIGALRM) and reported as such


def files(world):
    """Every file under ``world`` and its content's digest; a run folder's lock is not output."""
    found = {}
    for folder, _, names in os.walk(world):
        for name in set(names) - {LOCK}:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, world)] = hashlib.sha256(f.read()).hexdigest()
    return found


def run_case(module, args):
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:
            signal.alarm(CASE_SECONDS)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.argv = [module.__name__, *args]  # as python -m sets it: a binary may read what was typed
            os._exit(exit_status(lambda: app.run(module.main, argv=sys.argv)))
        _, status = os.waitpid(pid, 0)
        err.seek(0)
        return os.waitstatus_to_exitcode(status), err.read()


def main():
    module_name, world, cases = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    module = importlib.import_module(module_name)
    reports = []
    for args in cases:
        before = files(world)
        code, stderr = run_case(module, args)
        after = files(world)
        touched = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        reports.append({"args": args, "code": code, "stderr": stderr, "touched": touched})
    json.dump(reports, sys.stdout)


if __name__ == "__main__":
    main()
