"""No QEMU outlives kmodlab: SIGTERM, Ctrl-C (SIGINT) and even SIGKILL of the CLI.

A killed QEMU may linger as a zombie until init reaps it, so "gone" means no such process or
state Z in /proc/<pid>/stat: dead either way.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel

pytestmark = pytest.mark.kmodlab(arch="x86_64", kernel="6.1")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


def _qemu_child(pid: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(pid), "-f", "qemu-system"], capture_output=True,
                             text=True, check=False).stdout.split()
        if out:
            return int(out[0])
        time.sleep(0.1)
    raise AssertionError("kmodlab exec started no QEMU")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_qemu_dies_with_the_cli(kernel: Kernel, sig: signal.Signals) -> None:
    cli = subprocess.Popen([sys.executable, "-m", "kmodlab.cli", "exec", "--arch", kernel.arch,
                            "--kernel", kernel.series, "--", "sleep", "120"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    qemu = _qemu_child(cli.pid)
    time.sleep(2)        # let the guest come up and the command start
    cli.send_signal(sig)
    cli.wait(30)
    deadline = time.monotonic() + 10
    while _state(qemu) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _state(qemu) in ("gone", "Z"), f"QEMU {qemu} outlived kmodlab after {sig.name}"
    if sig == signal.SIGINT:
        assert cli.returncode == 130 and b"interrupted" in cli.stderr.read()
