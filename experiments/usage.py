"""What every binary says about a command line it cannot use. Imports nothing heavy, so that a binary
choosing its Keras backend (``experiments.bench``) can use it before Keras is imported."""

import sys


def reject_positional(argv) -> None:
    """Flags only: a stray word (a typo, a missing ``--``) ends the binary with one line naming it,
    not absl's page of usage."""
    if len(argv) > 1:
        more = f" (and {len(argv) - 2} more)" if len(argv) > 2 else ""
        print(f"error: unexpected argument {argv[1]!r}{more}: every option is a flag, --name=value "
              "(--help lists them)", file=sys.stderr)
        sys.exit(1)
