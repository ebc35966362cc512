"""The console protocol every transport implements: run a command, push a file, read a file.

Callers (the guest, the pytest plugin, the grader) ask for this capability, never for a transport.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CommandResult:
    """What a command did in the guest: its exact output bytes and its real exit status."""

    command: str
    exit_status: int
    stdout_bytes: bytes
    stderr_bytes: bytes
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", errors="replace")

    @property
    def output(self) -> str:
        """stdout followed by stderr, for messages."""
        return self.stdout + self.stderr


class Console(abc.ABC):
    """A command channel into a running guest."""

    transport: str = "?"

    @abc.abstractmethod
    def run(self, command: str, timeout: float = 30.0, isolate: bool = True) -> CommandResult:
        """Run ``command`` with /bin/sh; never raises for a non-zero status.

        ``isolate`` (the default) runs it in a fresh subshell, so `exit`, `cd` or a syntax error
        cannot disturb the channel.  ``isolate=False`` saves a fork (~3 ms on arm64 under TCG) and
        is only for the harness's own fixed, trusted commands.
        """

    @abc.abstractmethod
    def push(self, local_path: Path | str, guest_path: str, timeout: float = 60.0) -> None:
        """Copy a host file into the guest and verify its checksum."""

    def read(self, guest_path: str, timeout: float = 30.0) -> bytes:
        """The exact bytes of a guest file."""
        from kmodlab.errors import TransferError

        result = self.run(f"cat {shell_quote(guest_path)}", timeout=timeout)
        if not result.ok:
            raise TransferError(f"cannot read {guest_path} in the guest: {result.stderr.strip()}")
        return result.stdout_bytes

    @abc.abstractmethod
    def close(self) -> None:
        """Release the channel (the guest keeps running)."""


def shell_quote(text: str) -> str:
    """Single-quote ``text`` for /bin/sh; safe for every byte but NUL."""
    if "\0" in text:
        raise ValueError("a shell argument cannot contain a NUL byte")
    return "'" + text.replace("'", "'\\''") + "'"
