"""What every binary says about a command line it cannot use. Imports nothing heavy, so that a binary
choosing its Keras backend (``experiments.bench``) can use it before Keras is imported."""

import json
import os
import sys


def reject_positional(argv) -> None:
    """Flags only: a stray word (a typo, a missing ``--``) ends the binary with one line naming it,
    not absl's page of usage."""
    if len(argv) > 1:
        more = f" (and {len(argv) - 2} more)" if len(argv) > 2 else ""
        print(f"error: unexpected argument {argv[1]!r}{more}: every option is a flag, --name=value "
              "(--help lists them)", file=sys.stderr)
        sys.exit(1)


def new_file(path: str, flag: str) -> str:
    """``path``, or a fresh name beside it (``NAME-2.json``, ...) when it exists: a measurement cannot be
    made again, so it never replaces an earlier one. A place that cannot take the file ends the binary
    with one line; call it before the work, so a wrong path costs nothing, and again to write."""
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path) or (os.path.exists(folder) and not os.path.isdir(folder)):
        print(f"error: {flag}={path}: {path if os.path.isdir(path) else folder} is a "
              f"{'folder' if os.path.isdir(path) else 'file'}; give a file path in a folder", file=sys.stderr)
        sys.exit(1)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        print(f"error: {flag}={path}: cannot create {folder} ({error.strerror}); choose another {flag}",
              file=sys.stderr)
        sys.exit(1)
    stem, suffix = os.path.splitext(path)
    count = 1
    while os.path.exists(path):
        count += 1
        path = f"{stem}-{count}{suffix}"
    return path


def write_measurement(path: str, payload, flag: str = "--output") -> None:
    """Writes ``payload`` as JSON to ``path`` or, where that exists, beside it (:func:`new_file`), and
    says where."""
    final = new_file(path, flag)
    with open(f"{final}.tmp", "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(f"{final}.tmp", final)  # whole or absent: a kill never leaves half a file under the name
    print(f"wrote {final}" + (f" ({path} holds an earlier measurement, kept)" if final != path else ""))
