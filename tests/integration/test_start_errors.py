"""QEMU that exits at start is reported with QEMU's own words, not a traceback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kmodlab.errors import BootTimeout, GuestError, ProvisionError
from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kernel import Kernel
from kmodlab.qemu.process import running_qemu_pids


@pytest.mark.parametrize("image", ["missing", "junk"])
@pytest.mark.fault("bad_input")
def test_a_kernel_image_qemu_cannot_load(kernel: Kernel, tmp_path: Path, image: str) -> None:
    path = tmp_path / "not-a-kernel"
    if image == "junk":
        # A file QEMU reads but cannot boot: x86's loader refuses it at start; arm64 jumps into
        # it, so the guest never answers and the boot timeout (short here) is the report.
        path.write_bytes(b"this is no kernel image\n" * 64)
    broken = dataclasses.replace(kernel, image=path, vmlinux=None)
    before = running_qemu_pids()
    guest = Guest(broken, GuestOptions(snapshots=False, boot_timeout=15, check_config=False))
    with pytest.raises((GuestError, ProvisionError)) as info:
        guest.start()
    guest.stop()
    message = str(info.value)
    if image == "missing":
        # Found before QEMU starts (was a FileNotFoundError traceback from the snapshot key).
        assert isinstance(info.value, ProvisionError), message
        assert "boot image" in message and "is missing" in message and "fetch" in message
    else:
        assert "QEMU exited with status" in message or isinstance(info.value, BootTimeout), \
            message
    assert "Traceback" not in message
    assert running_qemu_pids() <= before
