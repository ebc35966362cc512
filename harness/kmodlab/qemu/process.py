"""Start QEMU so that it can never outlive kmodlab.

Three layers, because each covers a way the harness can end:
  - ``QemuProcess.stop()`` from the guest's context manager (normal exit, exceptions, Ctrl-C);
  - an ``atexit`` hook that kills every QEMU still registered (a forgotten guest, SystemExit);
  - ``PR_SET_PDEATHSIG`` = SIGKILL in the child, so the kernel kills QEMU even if Python itself
    is SIGKILLed or crashes.  (It fires when the *thread* that started QEMU exits, so guests are
    started from long-lived threads: the main thread or a worker process.)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from kmodlab.errors import MissingToolError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_live: set[QemuProcess] = set()
_live_lock = threading.Lock()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class QemuProcess:
    def __init__(self, argv: list[str], package: str, stderr_path: Path,
                 interactive: bool = False) -> None:
        if shutil.which(argv[0]) is None:
            raise MissingToolError(argv[0], package)
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - lives as long as QEMU, closed in stop()
        self.popen = subprocess.Popen(
            argv,
            stdin=None if interactive else subprocess.DEVNULL,
            stdout=None if interactive else subprocess.DEVNULL,
            stderr=None if interactive else self._stderr,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - PR_SET_PDEATHSIG must run in the child
            # Own process group: a Ctrl-C in the terminal reaches Python, which then stops QEMU
            # in order, instead of QEMU dying mid-command under us.
            start_new_session=not interactive,
        )
        with _live_lock:
            _live.add(self)
        log.debug("started QEMU pid %d: %s", self.popen.pid, " ".join(argv))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_status(self) -> int | None:
        return self.popen.poll()

    def stderr_text(self) -> str:
        self._stderr.flush()
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self, grace: float = 2.0) -> None:
        """Terminate QEMU (SIGTERM, then SIGKILL after ``grace`` seconds) and reap it."""
        try:
            if self.popen.poll() is None:
                self.popen.terminate()
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(5)
        finally:
            self._stderr.close()
            with _live_lock:
                _live.discard(self)


def live_processes() -> list[QemuProcess]:
    with _live_lock:
        return list(_live)


@atexit.register
def _kill_all() -> None:
    for proc in live_processes():
        with contextlib.suppress(Exception):   # best effort at interpreter exit
            proc.popen.kill()
            proc.popen.wait(5)


def running_qemu_pids() -> set[int]:
    """PIDs of every qemu-system process on the host (whoever started it), from /proc."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.split(b"\0", 1)[0].rsplit(b"/", 1)[-1].startswith(b"qemu-system"):
            pids.add(int(entry.name))
    return pids
