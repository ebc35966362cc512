"""Host side of the guest agent protocol (see images/agent.sh for the guest side).

Frames (NONCE is random per request, so no command output can imitate one):
    \\x01KMODLAB-AGENT-READY <pid>\\n          agent started
    \\x02NONCE\\n <stdout> \\x03NONCE RC\\n <stderr> \\x04NONCE\\n    one command
    \\x05NONCE READY\\n                         push: send the raw bytes now
The codec is transport-agnostic: it needs only a :class:`ByteStream`.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from kmodlab.channel.protocol import CommandResult, Console, shell_quote
from kmodlab.errors import ChannelClosed, CommandTimeout, GuestError, TransferError

READY_BANNER = b"\x01KMODLAB-AGENT-READY "
# How the agent starts on a byte stream: its definitions first, then the host's requests.
AGENT_COMMAND = "cat /etc/kmodlab/agent.sh - | sh -s"


class ByteStream(abc.ABC):
    """A bidirectional byte pipe to the agent, with a receive buffer and a health check."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        # Called between reads while waiting; raises (e.g. KernelCrash) if the guest died.
        self.health_check: Callable[[], None] = lambda: None

    @abc.abstractmethod
    def send(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def _recv_some(self, timeout: float) -> bytes:
        """Bytes available within ``timeout`` (b"" if none); raise GuestError on EOF."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def read_until(self, marker: bytes, timeout: float, what: str) -> bytes:
        """Consume and return everything before ``marker`` (the marker is consumed too)."""
        deadline = time.monotonic() + timeout
        search_from = 0
        while True:
            idx = self._buffer.find(marker, search_from)
            if idx >= 0:
                data = bytes(self._buffer[:idx])
                del self._buffer[: idx + len(marker)]
                return data
            search_from = max(0, len(self._buffer) - len(marker) + 1)
            self.health_check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandTimeout(f"no answer from the guest within {timeout:.1f} s while {what}")
            try:
                self._buffer += self._recv_some(min(remaining, 0.1))
            except ChannelClosed:
                self._explain_close()
                raise

    def _explain_close(self, grace: float = 3.0) -> None:
        """A channel closes a moment before QEMU finishes exiting (e.g. after a panic with
        panic=-1): give the health check the chance to say *why* (KernelCrash, QEMU's exit)."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.health_check()
            time.sleep(0.05)

    def read_line(self, timeout: float, what: str) -> bytes:
        return self.read_until(b"\n", timeout, what)

    def discard_buffer(self) -> None:
        self._buffer.clear()


class AgentConsole(Console):
    """Runs commands through the guest agent over any :class:`ByteStream`."""

    def __init__(self, stream: ByteStream, transport: str) -> None:
        self.stream = stream
        self.transport = transport

    def wait_ready(self, timeout: float) -> None:
        """Wait for the agent's start banner (a cold boot) ."""
        self.stream.read_until(READY_BANNER, timeout, "waiting for the guest agent to start")
        self.stream.read_line(5.0, "reading the agent banner")

    def ping(self, timeout: float = 10.0) -> None:
        """Prove the agent answers (after a snapshot restore there is no banner to wait for)."""
        result = self.run("echo kmodlab-ping", timeout=timeout)
        if result.stdout_bytes != b"kmodlab-ping\n":
            raise GuestError(f"unexpected ping answer from the agent: {result.stdout_bytes!r}")

    def run(self, command: str, timeout: float = 30.0, isolate: bool = True) -> CommandResult:
        nonce = secrets.token_hex(8).encode()
        start = time.monotonic()
        flag = b" 1 " if isolate else b" 0 "
        self.stream.send(b"__km_run " + nonce + flag + shell_quote(command).encode() + b"\n")
        what = f"running {command[:80]!r}"
        self.stream.read_until(b"\x02" + nonce + b"\n", timeout, what)

        def remaining() -> float:
            return max(0.1, timeout - (time.monotonic() - start))

        stdout = self.stream.read_until(b"\x03" + nonce + b" ", remaining(), what)
        status = int(self.stream.read_line(remaining(), what))
        stderr = self.stream.read_until(b"\x04" + nonce + b"\n", remaining(), what)
        return CommandResult(command, status, stdout, stderr, time.monotonic() - start)

    def push(self, local_path: Path | str, guest_path: str, timeout: float = 60.0) -> None:
        data = Path(local_path).read_bytes()
        nonce = secrets.token_hex(8).encode()
        what = f"pushing {local_path} to {guest_path}"
        self.stream.send(
            b"__km_push " + nonce + b" " + shell_quote(guest_path).encode()
            + b" " + str(len(data)).encode() + b"\n"
        )
        self.stream.read_until(b"\x05" + nonce + b" READY\n", timeout, what)
        self.stream.send(data)
        self.stream.read_until(b"\x02" + nonce + b"\n", timeout, what)
        answer = self.stream.read_until(b"\x03" + nonce + b" ", timeout, what)
        status = int(self.stream.read_line(timeout, what))
        self.stream.read_until(b"\x04" + nonce + b"\n", timeout, what)
        expected = hashlib.md5(data).hexdigest()
        got = answer.split(b" ", 1)[0].decode(errors="replace")
        if status != 0 or got != expected:
            raise TransferError(
                f"{local_path} arrived damaged at {guest_path}: md5 {got!r}, expected {expected}"
                f" (guest said {answer.decode(errors='replace').strip()!r})"
            )

    def close(self) -> None:
        self.stream.close()
