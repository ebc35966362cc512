"""vmlinux extraction on synthetic bzImages (real ones are checked in the integration test)."""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import struct
import subprocess

import pytest

from kmodlab.errors import MissingToolError
from kmodlab.kernels import vmlinux as vm


def fake_elf(size: int = 8192) -> bytes:
    """An ELF64 header whose section table sits at the very end: complete only if whole."""
    shentsize, shnum = 64, 2
    head = bytearray(64)
    head[0:8] = b"\x7fELF\x02\x01\x01\x00"
    struct.pack_into("<Q", head, 0x28, size - shentsize * shnum)
    struct.pack_into("<HH", head, 0x3A, shentsize, shnum)
    body = bytes(range(256)) * ((size - 64) // 256 + 1)
    return bytes(head) + body[: size - 64]


def fake_bzimage(payload: bytes, *, setup_sects: int = 3, lead: int = 0x100) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x020F)
    struct.pack_into("<II", setup, 0x248, lead, len(payload))
    return bytes(setup) + b"\x90" * lead + payload + b"\xcc" * 64


def test_elf_complete():
    elf = fake_elf()
    assert vm.elf_complete(elf)
    assert not vm.elf_complete(elf[:-1])
    assert not vm.elf_complete(b"MZ" + elf[2:])


def test_xz_payload_from_setup_header():
    elf = fake_elf()
    payload = lzma.compress(elf, format=lzma.FORMAT_XZ) + struct.pack("<I", len(elf))
    assert vm.decompress_vmlinux(fake_bzimage(payload)) == elf


@pytest.mark.skipif(not shutil.which("lz4"), reason="needs the lz4 tool")
def test_lz4_legacy_payload_with_trailing_size():
    """kbuild's `lz4 -l` + size_append: lz4 exits 1 on the trailer, output still complete."""
    elf = fake_elf(1 << 16)
    legacy = subprocess.run(["lz4", "-l", "-c"], input=elf, capture_output=True, check=False).stdout
    assert legacy[:4] == b"\x02\x21\x4c\x18"
    payload = legacy + struct.pack("<I", len(elf))
    assert vm.decompress_vmlinux(fake_bzimage(payload)) == elf


@pytest.mark.skipif(not shutil.which("zstd"), reason="needs the zstd tool")
def test_zstd_payload():
    """Debian 6.12 x86 bzImages (cloud and generic) are zstd-compressed."""
    elf = fake_elf(1 << 16)
    stream = subprocess.run(["zstd", "-c", "-q"], input=elf, capture_output=True,
                            check=True).stdout
    assert vm.decompress_vmlinux(fake_bzimage(stream + struct.pack("<I", len(elf)))) == elf


def test_gzip_found_by_magic_without_a_setup_header():
    elf = fake_elf()
    blob = b"\x00" * 777 + gzip.compress(elf) + b"trailing"
    assert vm.decompress_vmlinux(blob) == elf


def test_truncated_kernel_is_rejected():
    elf = fake_elf()
    payload = lzma.compress(elf[:-100], format=lzma.FORMAT_XZ)
    assert vm.decompress_vmlinux(fake_bzimage(payload)) is None


def test_missing_lz4_tool_is_named(monkeypatch):
    monkeypatch.setattr(vm.shutil, "which", lambda tool: None)
    payload = b"\x02\x21\x4c\x18" + os.urandom(64)
    with pytest.raises(MissingToolError, match="apt-get install lz4"):
        vm.decompress_vmlinux(fake_bzimage(payload))


def test_extract_writes_the_file_or_returns_none(tmp_path):
    elf = fake_elf()
    image = tmp_path / "vmlinuz"
    image.write_bytes(fake_bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ)))
    out = vm.extract_vmlinux(image, tmp_path / "vmlinux")
    assert out == tmp_path / "vmlinux" and out.read_bytes() == elf
    image.write_bytes(b"ARMd" + os.urandom(4096))     # e.g. an arm64 Image: nothing to extract
    assert vm.extract_vmlinux(image, tmp_path / "other") is None
    assert not (tmp_path / "other").exists()
