"""Serial transport: pexpect on QEMU's virtio serial port ``kmodlab.cmd``.

QEMU exposes the port as a unix socket (``-chardev socket,server=on,wait=on``): QEMU does not
start the guest until we are connected, so the agent's banner can never be missed.  A serial
*port* rather than a virtio *console*: QEMU throttles a port whose reader is slow, but drops
console output (hw/char/virtio-console.c:flush_buf()), which corrupted large reads under load.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pexpect
import pexpect.fdpexpect

from kmodlab.channel.agent import AgentConsole, ByteStream
from kmodlab.errors import ChannelClosed, GuestError


class SerialStream(ByteStream):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._child = pexpect.fdpexpect.fdspawn(sock.fileno(), timeout=None)
        # pexpect sleeps delaybeforesend (0.05 s by default, pexpect/spawnbase.py) before each
        # send (docs/guest-notes.md, Consoles).
        self._child.delaybeforesend = None

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = self._sock.send(view)
            view = view[sent:]

    def _recv_some(self, timeout: float) -> bytes:
        try:
            return self._child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return b""
        except pexpect.EOF:
            raise ChannelClosed("the guest's command console closed (QEMU exited?)") from None

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def connect_serial(socket_path: Path, timeout: float = 10.0) -> AgentConsole:
    """Connect to QEMU's command-console socket, waiting for QEMU to create it."""
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while time.monotonic() < deadline:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(socket_path))
            return AgentConsole(SerialStream(sock), transport="serial")
        except OSError as exc:
            sock.close()
            last_error = exc
            time.sleep(0.01)
    raise GuestError(f"QEMU's command console {socket_path} did not appear: {last_error}")
