"""Get the uncompressed ELF ``vmlinux`` out of an x86 bzImage, for PVH direct boot.

Why: under TCG, decompressing the XZ bzImage costs ~4 s of every boot; QEMU boots an ELF vmlinux
with a PVH note directly (arch/x86/platform/pvh/head.S XEN_ELFNOTE_PHYS32_ENTRY; QEMU
hw/i386/x86.c:load_elfboot(); docs/guest-notes.md, Boot time).  Debian ships no vmlinux, so it is
cut out of the bzImage the way scripts/extract-vmlinux does, with two improvements: the setup
header's payload_offset/payload_length say exactly where the compressed kernel is, and the result
is checked to be a *complete* ELF (section headers inside the data), not just to start with
\\x7fELF.
"""

from __future__ import annotations

import bz2
import lzma
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from kmodlab.errors import MissingToolError

ELF_MAGIC = b"\x7fELF"


def _xz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _lzma(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)


def _gzip(data: bytes) -> bytes:
    return zlib.decompressobj(wbits=31).decompress(data)


def _bzip2(data: bytes) -> bytes:
    return bz2.BZ2Decompressor().decompress(data)


def _tool(*argv: str) -> Callable[[bytes], bytes]:
    """Decompress through a command (stdin -> stdout).

    The kernel appends its 4-byte size after the stream, so lz4 exits 1 ("trailing data") with the
    output complete: the exit code is ignored and the ELF check decides.
    """
    def run(data: bytes) -> bytes:
        if not shutil.which(argv[0]):
            raise MissingToolError(argv[0], TOOL_PACKAGES[argv[0]])
        return subprocess.run(list(argv), input=data, capture_output=True, check=False).stdout
    return run


# Debian package of each decompression tool.
TOOL_PACKAGES = {"lz4": "lz4", "zstd": "zstd", "lzop": "lzop"}

# magic -> decompressor, for the formats kbuild can compress a bzImage with.
DECOMPRESSORS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\xfd7zXZ\x00": _xz,
    b"\x02\x21\x4c\x18": _tool("lz4", "-dc"),       # lz4 legacy frame (what kbuild writes)
    b"\x04\x22\x4d\x18": _tool("lz4", "-dc"),       # lz4 frame
    b"\x28\xb5\x2f\xfd": _tool("zstd", "-dcq"),
    b"\x1f\x8b\x08": _gzip,
    b"BZh": _bzip2,
    b"\x5d\x00\x00": _lzma,
    b"\x89LZO": _tool("lzop", "-dc"),
}


def elf_complete(data: bytes) -> bool:
    """True if ``data`` is an ELF64/32 whose section header table lies inside it."""
    if not data.startswith(ELF_MAGIC) or len(data) < 64:
        return False
    is64 = data[4] == 2
    order = "<" if data[5] == 1 else ">"
    if is64:
        (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
    else:
        (shoff,) = struct.unpack_from(order + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(order + "HH", data, 0x2E)
    return shoff + shentsize * shnum <= len(data)


def _payload(data: bytes) -> bytes | None:
    """The compressed kernel, from the bzImage setup header (boot protocol >= 2.08)."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    (protocol,) = struct.unpack_from("<H", data, 0x206)
    if protocol < 0x208:
        return None
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if length == 0 or start + length > len(data):
        return None
    return data[start:start + length]


def _attempts(data: bytes) -> Iterator[tuple[bool, bytes]]:
    """(exact?, stream): the setup header's payload first, then every magic in the file."""
    payload = _payload(data)
    if payload is not None:
        yield True, payload
    view = memoryview(data)
    for magic in DECOMPRESSORS:
        start = data.find(magic)
        while start != -1:
            yield False, bytes(view[start:])
            start = data.find(magic, start + 1)


def decompress_vmlinux(data: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage's bytes, or None.

    A missing tool for the *exact* payload's format is an error (MissingToolError): silently
    falling back to the slow bzImage boot would hide it.
    """
    if elf_complete(data):
        return data
    for exact, stream in _attempts(data):
        for magic, decompress in DECOMPRESSORS.items():
            if not stream.startswith(magic):
                continue
            try:
                out = decompress(stream)
            except MissingToolError:
                if exact:
                    raise
                continue
            except (lzma.LZMAError, zlib.error, OSError, ValueError, EOFError):
                continue
            if elf_complete(out):
                return out
    return None


def extract_vmlinux(image: Path, dest: Path) -> Path | None:
    """Write the vmlinux inside ``image`` to ``dest``; None if there is none (boot the image)."""
    out = decompress_vmlinux(image.read_bytes())
    if out is None:
        return None
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(out)
    tmp.rename(dest)
    return dest
