"""``snapshot.qemu_version`` asks a QEMU binary once: the answer is remembered on disk by the
binary's path, size, inode and mtime (a warm start saves running QEMU), and a changed binary
is asked again (a snapshot must never restore into another QEMU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmodlab.snapshot import qemu_version


def _fake_qemu(path: Path, version: str, calls: Path) -> None:
    path.write_text(f"#!/bin/sh\necho x >> {calls}\necho 'QEMU emulator version {version}'\n")
    path.chmod(0o755)


def test_the_version_is_asked_once_and_again_when_the_binary_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    calls = tmp_path / "calls"
    binary = tmp_path / "bin" / "qemu-system-fake"
    binary.parent.mkdir()
    _fake_qemu(binary, "7.2.15", calls)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    qemu_version.cache_clear()           # the in-process memo; the disk one is under test
    assert qemu_version("qemu-system-fake") == "QEMU emulator version 7.2.15"
    qemu_version.cache_clear()           # a new process
    assert qemu_version("qemu-system-fake") == "QEMU emulator version 7.2.15"
    assert calls.read_text().count("x") == 1
    _fake_qemu(binary, "9.2.0", calls)           # an upgrade: new size and mtime
    os.utime(binary, ns=(1, 1))
    qemu_version.cache_clear()
    assert qemu_version("qemu-system-fake") == "QEMU emulator version 9.2.0"
    assert calls.read_text().count("x") == 2
    (tmp_path / "cache" / "state" / "qemu-versions.json").write_text("{damaged")
    qemu_version.cache_clear()
    assert qemu_version("qemu-system-fake") == "QEMU emulator version 9.2.0"   # asks again
    assert qemu_version("not-a-qemu-anywhere") == "unknown"
