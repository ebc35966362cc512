"""``python -m kmodlab.labs.limited --as=N --cpu=S --fsize=N --nofile=N -- argv...``

Sets resource limits on itself and execs ``argv``: the limits then hold for make, gcc and every
process they start (for a lab build ``argv`` is bwrap, so they hold for the whole jail).  A
separate program rather than ``preexec_fn`` because the grader runs builds from several
threads, where ``preexec_fn`` is unsafe.  :func:`run_limited` runs such a command line with its
output in a file and a wall-clock timeout.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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


def run_limited(argv: list[str], cwd: Path, log_path: Path, timeout: float,
                env: dict[str, str], pass_fds: Sequence[int] = ()) -> tuple[int | None, float]:
    """Run ``argv`` (already wrapped by this module) with output to ``log_path``, in its own
    session.  Returns (exit status or None on timeout, seconds); at the end the whole process
    group is killed (a jailed build also dies with bwrap: --die-with-parent, pid namespace)."""
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                pass_fds=tuple(pass_fds))
        try:
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    return rc, time.monotonic() - t0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
