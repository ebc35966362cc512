"""Close a window of the console log: write a marker to /dev/kmsg and wait until QEMU has
written it to the console log file.

Everything the kernel printed before the marker is then in the file, so a scan up to the
marker line (:func:`kmodlab.observe.stream.scan_file`) has the whole window, whatever the
console's lag; without it, a report still in the kernel's console backlog would be judged with
the next window (or never, after the last test).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab.channel.protocol import shell_quote

if TYPE_CHECKING:
    from kmodlab.guest import Guest

SYNC_TIMEOUT = 20.0
"""Seconds the console may take to show a marker (a backlog of a flood drains first)."""
_POLL = 0.02


def write_marker(guest: Guest, marker: str, timeout: float = 30.0) -> None:
    """Print ``marker`` as a kernel log line (it reaches dmesg and the console)."""
    guest.run(f"echo {shell_quote(marker)} > /dev/kmsg", isolate=False, must_succeed=True,
              timeout=timeout)


def wait_for_marker(path: Path, marker: str, offset: int = 0,
                    timeout: float = SYNC_TIMEOUT) -> bool:
    """Whether ``marker`` shows in the file ``path`` after byte ``offset`` within ``timeout``
    seconds; read incrementally (only what the file gained, bounded chunks)."""
    needle = marker.encode()
    overlap = len(needle)
    position = offset
    carry = b""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as fh:
                if fh.seek(0, 2) < position:
                    return False        # the file was cut: the marker cannot be told apart
                fh.seek(position)
                while chunk := fh.read(1 << 20):
                    position += len(chunk)
                    data = carry + chunk
                    if needle in data:
                        return True
                    carry = data[-overlap:]
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def sync_console(guest: Guest, marker: str, offset: int,
                 timeout: float = SYNC_TIMEOUT, command_timeout: float = 30.0) -> bool:
    """Write ``marker`` and wait for it in the guest's console log (after ``offset``)."""
    write_marker(guest, marker, command_timeout)
    return wait_for_marker(guest.console_log, marker, offset, timeout)


__all__ = ["SYNC_TIMEOUT", "sync_console", "wait_for_marker", "write_marker"]
