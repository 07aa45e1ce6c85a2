"""``python -m tests.run_script CODE ARGS``: runs CODE with ARGS as sys.argv[1:], in a fresh process."""

import sys

if __name__ == "__main__":
    code, sys.argv = sys.argv[1], sys.argv[1:]
    exec(compile(code, "<test script>", "exec"), {"__name__": "__main__"})
