"""SSH keys shared by every guest: kmodlab's client key and the guests' dropbear host key.

Both are generated once on the host and kept in ``cache_dir("ssh")``: the guest never generates a
key (that would cost boot time and entropy: docs/guest-notes.md, SSH), and one host key for all
guests lets the SSH client pin it instead of trusting whatever answers on the forwarded port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kmodlab.errors import MissingToolError, ProvisionError
from kmodlab.paths import cache_dir, file_lock

CLIENT_KEY = "id_ed25519"
HOST_KEY = "dropbear_ed25519_host_key"
KEY_COMMENT = "kmodlab"


def ssh_client_key_path() -> Path:
    """The OpenSSH-format ed25519 private key (mode 600) kmodlab logs into guests with.

    Loads with ``paramiko.Ed25519Key.from_private_key_file``.

    Its public half (``<path>.pub``) goes into the guest's /root/.ssh/authorized_keys.
    """
    directory = _ssh_dir()
    path = directory / CLIENT_KEY
    if path.is_file() and path.with_suffix(".pub").is_file():
        return path
    with file_lock(directory / ".lock"):
        if not (path.is_file() and path.with_suffix(".pub").is_file()):
            # Imported here: every guest start asks for the path, only the first makes a key.
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            key = Ed25519PrivateKey.generate()
            private = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.OpenSSH,
                                        serialization.NoEncryption())
            public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                   serialization.PublicFormat.OpenSSH)
            _write_atomic(path, private, 0o600)
            _write_atomic(path.with_suffix(".pub"), public + f" {KEY_COMMENT}\n".encode(), 0o644)
    return path


def ssh_client_public_key() -> str:
    """The authorized_keys line of the client key, e.g. ``ssh-ed25519 AAAA... kmodlab``."""
    return ssh_client_key_path().with_suffix(".pub").read_text().strip()


def dropbear_host_key_path() -> Path:
    """Dropbear-format ed25519 host key, installed in every guest at /etc/dropbear/."""
    directory = _ssh_dir()
    path = directory / HOST_KEY
    if path.is_file() and path.with_suffix(".pub").is_file():
        return path
    if shutil.which("dropbearkey") is None:
        raise MissingToolError("dropbearkey", "dropbear-bin")
    with file_lock(directory / ".lock"):
        if not (path.is_file() and path.with_suffix(".pub").is_file()):
            tmp = directory / f".{HOST_KEY}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            try:
                _dropbearkey(["-t", "ed25519", "-f", str(tmp)])
                public = _public_line(_dropbearkey(["-y", "-f", str(tmp)]))
                os.chmod(tmp, 0o600)
                tmp.rename(path)
            finally:
                tmp.unlink(missing_ok=True)
            _write_atomic(path.with_suffix(".pub"), (public + "\n").encode(), 0o644)
    return path


def ssh_host_public_key() -> str:
    """The guests' host key as ``ssh-ed25519 AAAA...``, for pinning it in the SSH client."""
    return dropbear_host_key_path().with_suffix(".pub").read_text().strip()


def _ssh_dir() -> Path:
    directory = cache_dir("ssh")
    os.chmod(directory, 0o700)
    return directory


def _dropbearkey(args: list[str]) -> str:
    proc = subprocess.run(["dropbearkey", *args], check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProvisionError(f"dropbearkey {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _public_line(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("ssh-ed25519 "):
            return " ".join(line.split()[:2])
    raise ProvisionError(f"dropbearkey -y printed no ssh-ed25519 public key:\n{output}")


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    tmp.rename(path)
