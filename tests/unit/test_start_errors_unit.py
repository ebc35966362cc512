"""Numeric options are validated before anything starts; a QMP peer that vanishes is a
GuestError, not a ConnectionResetError traceback."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest

from kmodlab.cli import main
from kmodlab.errors import ConfigError, GuestError
from kmodlab.guest import MIN_MEMORY_MB, GuestOptions
from kmodlab.qemu.qmp import QMPClient


@pytest.mark.parametrize("kwargs, message", [
    ({"memory_mb": 1}, "guest memory must be"),
    ({"memory_mb": MIN_MEMORY_MB - 1}, "guest memory must be"),
    ({"cpus": 0}, "guest CPUs must be 1.."),
    ({"cpus": -2}, "guest CPUs must be 1.."),
    ({"boot_timeout": -1.0}, "boot timeout must be a positive"),
    ({"boot_timeout": 0.0}, "boot timeout must be a positive"),
])
@pytest.mark.fault("bad_input")
def test_guest_options_refuse_impossible_numbers(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GuestOptions(**kwargs)


def test_guest_options_accept_the_defaults_and_the_minimum() -> None:
    GuestOptions()
    GuestOptions(memory_mb=MIN_MEMORY_MB, cpus=1, boot_timeout=0.5)


@pytest.mark.parametrize("argv", [
    ["exec", "--cpus", "0", "--", "true"],
    ["exec", "--timeout", "-1", "--", "true"],
    ["exec", "--timeout", "nan", "--", "true"],
    ["exec", "--boot-timeout", "0", "--", "true"],
    ["exec", "--memory", "many", "--", "true"],
    ["check", "--cpus", "0"],
    ["lab", "grade", "kmalloc_waste", "subs", "--out", "o", "--jobs", "0"],
    ["model", "ksize", "8", "--cpus", "-1"],
])
@pytest.mark.fault("bad_input")
def test_cli_refuses_bad_numbers_with_usage(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.fault("bad_input")
def test_cli_refuses_too_little_memory_before_booting(capsys) -> None:
    assert main(["exec", "--memory", "1", "--", "true"]) == 2
    assert "guest memory must be" in capsys.readouterr().err


def _qmp_server(path: Path, greet: bool) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        if greet:
            conn.sendall(b'{"QMP": {"version": {}}}\n')
            conn.recv(4096)
        # Close with a reset, as a QEMU that dies mid-handshake does.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("greet", [False, True])
@pytest.mark.fault("bad_input")
def test_qmp_peer_that_vanishes_is_a_guest_error(tmp_path: Path, greet: bool) -> None:
    thread = _qmp_server(tmp_path / "qmp.sock", greet)
    with pytest.raises(GuestError, match="QMP"):
        QMPClient(tmp_path / "qmp.sock", timeout=5)
    thread.join(5)
