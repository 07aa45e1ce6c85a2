"""``python -m tests.fork_server``: runs ``python -m MODULE ARGS`` requests in children forked from one process.

TensorFlow's import is about five seconds of every binary's start-up, and the suite starts binaries some
seventy times. This process imports what every binary imports (Keras, the library, matplotlib, and under
TensorFlow its runtime and the input pipeline), runs no op, and forks one child per request. The child
runs the module as ``python -m`` would (``runpy`` as ``__main__``, its own argv, folder, stdout and
stderr), so flags are parsed afresh and nothing leaks between requests; the parent stays clean because it
never starts TensorFlow's runtime. ``tests/bad_input_driver.py`` does the same per binary.

Why not ``multiprocessing``'s forkserver: it serves one environment per parent (the suite needs one per
``env=``, e.g. ``KERAS_BACKEND=jax``), and with preloading it imports the parent's main script again.

Requests come one JSON line at a time on stdin: ``{"module", "args", "cwd", "timeout", "out", "err"}``; the
reply, on the stdout this process had when it started, is ``{"code", "timed_out", "seconds"}``, with the
child's output in the files ``out`` and ``err``. Anything else written to stdout here goes to stderr, so a
reply line is never mixed with a library's print.
"""

import json
import os
import runpy
import signal
import sys
import time
import traceback

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot  # noqa: E402,F401

import ml_resnet_tf  # noqa: E402,F401

if keras.backend.backend() == "tensorflow":  # a JAX binary's own modules must not import TensorFlow (test_backends)
    from ml_resnet_tf.cli import common  # noqa: F401
    from ml_resnet_tf.training import data  # noqa: F401


def run_child(request) -> None:
    """In the forked child: become ``python -m MODULE ARGS`` and exit with its status."""
    signal.alarm(int(request["timeout"]))
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]  # as `python -m` puts the working folder first
    sys.argv = [request["module"], *request["args"]]
    os._exit(exit_status(lambda: runpy.run_module(request["module"], run_name="__main__", alter_sys=True)))


def exit_status(run) -> int:
    """Calls ``run()`` as the interpreter would run a program, and returns the exit status it would end with."""
    code = 0
    try:
        run()
    except SystemExit as stop:
        code = stop.code
        if isinstance(code, str):  # sys.exit("message"), as the interpreter reports it
            print(code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter would print: tests look for it
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return code or 0


def main() -> None:
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        _, status = os.waitpid(pid, 0)
        timed_out = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM
        reply.write(json.dumps({"code": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
                                "seconds": time.monotonic() - started}) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
