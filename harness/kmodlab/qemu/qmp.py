"""A minimal QMP client (QEMU Machine Protocol): JSON lines over a unix socket.

Only what kmodlab needs: capabilities negotiation, commands, and skipping asynchronous events.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from kmodlab.errors import GuestError


class QMPError(GuestError):
    pass


class QMPClient:
    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._sock.connect(str(path))
                break
            except OSError as exc:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"cannot connect to QMP at {path}: {exc}") from exc
                time.sleep(0.01)
        self._sock.settimeout(timeout)
        self._file = self._sock.makefile("rwb")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        try:
            line = self._file.readline()
        except OSError as exc:   # reset or timed out: QEMU died or hangs
            raise QMPError(f"QMP connection lost ({exc}); QEMU exited or stopped answering") \
                from None
        if not line:
            raise QMPError("QMP connection closed (QEMU exited?)")
        return json.loads(line)

    def execute(self, command: str, **arguments: Any) -> Any:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        try:
            self._file.write(json.dumps(message).encode() + b"\n")
            self._file.flush()
        except OSError as exc:
            raise QMPError(f"QMP {command}: connection lost ({exc}); QEMU exited?") from None
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QMPError(f"QMP {command} failed: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def pass_fd(self, name: str, fd: int) -> None:
        """Hand QEMU a file descriptor under ``name`` (QMP ``getfd``: the descriptor travels as
        SCM_RIGHTS ancillary data with the command), for URIs such as ``fd:<name>``."""
        message = json.dumps({"execute": "getfd", "arguments": {"fdname": name}}).encode() + b"\n"
        try:
            self._file.flush()
            socket.send_fds(self._sock, [message], [fd])
        except OSError as exc:
            raise QMPError(f"QMP getfd: connection lost ({exc}); QEMU exited?") from None
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QMPError(f"QMP getfd failed: {reply['error'].get('desc', reply['error'])}")
            return

    def close(self) -> None:
        try:
            self._file.close()
            self._sock.close()
        except OSError:
            pass
