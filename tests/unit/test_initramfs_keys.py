"""kmodlab's SSH client key and the guests' dropbear host key."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from kmodlab.images.keys import (
    dropbear_host_key_path,
    ssh_client_key_path,
    ssh_client_public_key,
    ssh_host_public_key,
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path))


def test_client_key_loads_in_paramiko_and_is_private() -> None:
    paramiko = pytest.importorskip("paramiko")
    path = ssh_client_key_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    kind, blob, comment = ssh_client_public_key().split()
    assert (kind, blob, comment) == ("ssh-ed25519", key.get_base64(), "kmodlab")


def test_keys_are_generated_once() -> None:
    first = ssh_client_key_path().read_bytes()
    assert ssh_client_key_path().read_bytes() == first


@pytest.mark.skipif(shutil.which("dropbearkey") is None, reason="dropbear-bin is not installed")
def test_host_key_is_dropbear_format_with_public_half() -> None:
    path = dropbear_host_key_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert data[4:15] == b"ssh-ed25519"          # dropbear's own format: length-prefixed type
    assert ssh_host_public_key().startswith("ssh-ed25519 AAAA")
    assert dropbear_host_key_path().read_bytes() == data
