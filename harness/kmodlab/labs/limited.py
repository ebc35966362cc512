"""``python -m kmodlab.labs.limited --as=N --cpu=S --fsize=N --nofile=N -- argv...``

Sets resource limits on itself and execs ``argv``: the limits then hold for make, gcc and every
process they start.  A separate program rather than ``preexec_fn`` because the grader runs
builds from several threads, where ``preexec_fn`` is unsafe.
"""

from __future__ import annotations

import os
import resource
import sys

LIMITS = {"--as": resource.RLIMIT_AS, "--cpu": resource.RLIMIT_CPU,
          "--fsize": resource.RLIMIT_FSIZE, "--nofile": resource.RLIMIT_NOFILE}


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: python -m kmodlab.labs.limited --as=N ... -- command", file=sys.stderr)
        return 2
    split = argv.index("--")
    for option in argv[:split]:
        name, _, value = option.partition("=")
        if name not in LIMITS:
            print(f"unknown limit {name}", file=sys.stderr)
            return 2
        limit = int(value)
        resource.setrlimit(LIMITS[name], (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    command = argv[split + 1:]
    os.execvp(command[0], command)
    return 127  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
