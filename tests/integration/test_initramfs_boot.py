"""Build real initramfs images and boot them in QEMU (TCG) on Debian cloud kernels.

The ``kernel`` fixture (tests/integration/conftest.py) runs every test on each kernel of the matrix.

The guest runs a small test /init of its own (tests/integration/data/initramfs_test_init) that
prints KMODLAB_* markers, so these tests do not depend on the project's real init.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kmodlab.guest import free_port
from kmodlab.images import (
    append_files_cpio,
    build_initramfs,
    image_manifest,
    ssh_client_key_path,
    ssh_host_public_key,
)
from kmodlab.kernels.kernel import Kernel
from kmodlab.registry.arch import arch_profile

pytestmark = pytest.mark.integration

TEST_INIT = Path(__file__).parent / "data" / "initramfs_test_init"
BOOT_TIMEOUT = 120.0
EXEC_ROUNDS = 150

def _qemu_command(kernel: Kernel, initrd: Path, *, append: str = "",
                  hostfwd_port: int | None = None) -> list[str]:
    profile = arch_profile(kernel.arch)
    romfile = ",romfile=" if profile.nic_romfile else ""
    netdev = "user,id=n0" + (f",hostfwd=tcp:127.0.0.1:{hostfwd_port}-:22" if hostfwd_port else "")
    return [
        profile.qemu_binary, "-machine", profile.machine, "-accel", "tcg", "-cpu", profile.cpu,
        "-smp", "1", "-m", "512", "-kernel", str(kernel.boot_image), "-initrd", str(initrd),
        "-append", f"console={profile.kernel_console} quiet panic=-1 {append}".strip(),
        "-nographic", "-no-reboot", *profile.extra_args,
        "-netdev", netdev, "-device", f"{profile.virtio_device('net')},netdev=n0{romfile}",
        "-device", profile.virtio_device("rng"),
    ]


@contextlib.contextmanager
def _qemu(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run QEMU with its console in ``log``; always killed on the way out."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def _wait_exit(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"guest did not power off within {timeout} s:\n{_tail(log)}")
    return log.read_text(errors="replace")


def _wait_marker(proc: subprocess.Popen[bytes], log: Path, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"QEMU exited (rc {proc.returncode}) before {marker}:\n{_tail(log)}")
        time.sleep(0.1)
    pytest.fail(f"no {marker} within {timeout} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def _check_markers(text: str, kernel: Kernel) -> None:
    assert f"KMODLAB_TEST_INIT uname={kernel.release}" in text, text
    failures = [line for line in text.splitlines() if "KMODLAB_FAIL" in line]
    assert not failures, "\n".join(failures)
    for check in ("modprobe virtio_net", "modprobe virtio_pci", "test -d /sys/module/virtio_net",
                  "/usr/lib/sftp-server -Q requests"):
        assert f"KMODLAB_OK {check}" in text, text
    assert "KMODLAB_DROPBEAR Dropbear v" in text, text
    assert ("KMODLAB_PERMS 700 0:0 /root 700 0:0 /root/.ssh 600 0:0 /root/.ssh/authorized_keys "
            "600 0:0 /etc/dropbear/dropbear_ed25519_host_key") in text, text


def test_boot_checks_and_appended_cpio(kernel: Kernel, tmp_path: Path) -> None:
    """Modules load, dropbear runs (all its libraries are there), an appended cpio arrives."""
    image = build_initramfs(kernel, extra_files={"/init": TEST_INIT})
    # Append a second gzip member (what a harness does to push a module at boot).
    initrd = tmp_path / "initrd.gz"
    initrd.write_bytes(image.read_bytes() + append_files_cpio({"/extra/hello": b"world\n"}))
    log = tmp_path / "console.log"
    with _qemu(_qemu_command(kernel, initrd), log) as proc:
        text = _wait_exit(proc, log, BOOT_TIMEOUT)
    _check_markers(text, kernel)
    assert "KMODLAB_EXTRA hello world" in text, text
    assert "KMODLAB_DONE" in text, text
    manifest = image_manifest(image)
    assert manifest["modules_missing"] == []
    assert any(p.endswith("/virtio_net.ko") for p in manifest["modules_shipped"])


def test_ssh_login_and_sftp(kernel: Kernel, tmp_path: Path) -> None:
    """paramiko logs in with kmodlab's key, pins the host key, runs a command and an SFTP put."""
    paramiko = pytest.importorskip("paramiko")
    image = build_initramfs(kernel, extra_files={"/init": TEST_INIT})
    port = free_port()
    log = tmp_path / "console.log"
    host_key_type, host_key_b64 = ssh_host_public_key().split()[:2]
    cmd = _qemu_command(kernel, image, append="kmodlab_test.ssh=1", hostfwd_port=port)
    with _qemu(cmd, log) as proc:
        _wait_marker(proc, log, "KMODLAB_SSH_READY", BOOT_TIMEOUT)
        client = paramiko.SSHClient()
        client.get_host_keys().add(f"[127.0.0.1]:{port}", host_key_type,
                                   paramiko.Ed25519Key(data=base64.b64decode(host_key_b64)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        key = paramiko.Ed25519Key.from_private_key_file(str(ssh_client_key_path()))
        deadline = time.monotonic() + 30
        while True:
            try:
                client.connect("127.0.0.1", port, username="root", pkey=key, look_for_keys=False,
                               allow_agent=False, timeout=3, banner_timeout=3, auth_timeout=5)
                break
            except (paramiko.SSHException, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        try:
            _, stdout, _ = client.exec_command("uname -r; id -u")
            assert stdout.read().decode().split() == [kernel.release, "0"]
            payload = os.urandom(64 * 1024)
            with client.open_sftp() as sftp, sftp.open("/tmp/payload", "wb") as f:
                f.write(payload)
            _, stdout, _ = client.exec_command("md5sum /tmp/payload")
            assert stdout.read().decode().split()[0] == hashlib.md5(payload).hexdigest()
            # Many short channels: bookworm's dropbear 2022.83 aborted the session within ~50
            # (see kmodlab.images.guest_packages); the image must carry one that does not.
            for i in range(EXEC_ROUNDS):
                _, stdout, _ = client.exec_command(f"echo {i}")
                assert stdout.read() == f"{i}\n".encode()
            with contextlib.suppress(paramiko.SSHException, EOFError):
                client.exec_command("poweroff -f")
        finally:
            client.close()
        _wait_exit(proc, log, 60)
