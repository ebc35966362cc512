"""The ELF reader and DT_NEEDED walker, checked against readelf and ldd on host binaries."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kmodlab.errors import ProvisionError
from kmodlab.images.elf import (
    ElfError,
    needed_closure,
    parse_elf,
    read_elf,
    resolve_in_root,
    section,
)
from kmodlab.images.guest_packages import GuestArch, busybox_applets, guest_arch

HOST_BINARIES = [Path(p) for p in ("/bin/ls", "/usr/bin/ssh-keygen", "/usr/sbin/dropbear",
                                    "/usr/bin/python3") if Path(p).is_file()]


def _output(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def host_arch() -> GuestArch:
    out = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                         text=True)
    try:
        return guest_arch(out.stdout.strip())
    except ProvisionError:
        pytest.skip("host arch has no guest facts")


def relocatable_elf(sections: dict[str, bytes], *, is64: bool = True, little: bool = True) -> bytes:
    """A minimal ET_REL ELF with the given sections (what a .ko looks like to section())."""
    end = "<" if little else ">"
    names = b"\0" + b"".join(n.encode() + b"\0" for n in sections) + b".shstrtab\0"
    ehsize, shentsize = (64, 64) if is64 else (52, 40)
    body = b""
    offsets = []
    for data in sections.values():
        offsets.append(ehsize + len(body))
        body += data
    names_off = ehsize + len(body)
    body += names
    body += bytes(-(ehsize + len(body)) % 8)
    shoff = ehsize + len(body)
    count = len(sections) + 2
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1, 0]) + bytes(8)
    if is64:
        header = ident + struct.pack(end + "HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, ehsize, 0, 0,
                                     shentsize, count, count - 1)
        fmt = end + "IIQQQQIIQQ"
    else:
        header = ident + struct.pack(end + "HHIIIIIHHHHHH", 1, 3, 1, 0, 0, shoff, 0, ehsize, 0, 0,
                                     shentsize, count, count - 1)
        fmt = end + "IIIIIIIIII"
    shdrs = bytes(shentsize)
    name_pos = 1
    for (name, data), off in zip(sections.items(), offsets):
        shdrs += struct.pack(fmt, name_pos, 1, 2, 0, off, len(data), 0, 0, 1, 0)
        name_pos += len(name) + 1
    shdrs += struct.pack(fmt, name_pos, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)
    return header + body + shdrs


@pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils is not installed")
@pytest.mark.parametrize("binary", HOST_BINARIES, ids=[b.name for b in HOST_BINARIES])
def test_needed_and_interp_match_readelf(binary: Path) -> None:
    info = read_elf(binary)
    dynamic = _output(["readelf", "-dW", str(binary)])
    assert list(info.needed) == re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic)
    program = _output(["readelf", "-lW", str(binary)])
    interp = re.search(r"Requesting program interpreter: (.+?)\]", program)
    assert info.interp == (interp.group(1) if interp else None)
    assert info.machine == host_arch().elf_machine


def test_soname_of_libc() -> None:
    arch = host_arch()
    libc = resolve_in_root(Path("/"), f"{arch.lib_dir}/libc.so.6")
    assert read_elf(libc).soname == "libc.so.6"


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is not installed")
@pytest.mark.parametrize("binary", HOST_BINARIES, ids=[b.name for b in HOST_BINARIES])
def test_closure_matches_host_ldd(binary: Path) -> None:
    """On the host (where every library is installed) the walk finds exactly what ldd finds."""
    arch = host_arch()
    libs = needed_closure([binary], Path("/"), arch.search_dirs)
    ldd = _output(["ldd", str(binary)])
    expected = {line.split()[0].rsplit("/", 1)[-1] for line in ldd.splitlines()
                if "=>" in line or line.strip().startswith("/")}
    expected.discard("linux-vdso.so.1")
    loader = arch.loader.rsplit("/", 1)[-1]
    assert set(libs) | {loader} == expected | {loader}
    for lib in libs.values():
        assert lib.path.is_file() and not lib.path.is_symlink()


@pytest.mark.skipif(not Path("/usr/sbin/dropbear").is_file(), reason="dropbear-bin not installed")
def test_dropbear_closure_includes_libgmp() -> None:
    """libgmp is only reachable through libtomcrypt (docs/guest-notes.md, SSH)."""
    libs = needed_closure([Path("/usr/sbin/dropbear")], Path("/"), host_arch().search_dirs)
    assert libs["libgmp.so.10"].needed_by == "libtomcrypt.so.1"


def test_missing_library_is_named(tmp_path: Path) -> None:
    shutil.copy("/bin/ls", tmp_path / "ls")
    with pytest.raises(ProvisionError, match=r"libc\.so\.6 \(needed by ls\)"):
        needed_closure([tmp_path / "ls"], tmp_path, host_arch().search_dirs)


def test_resolve_in_root_keeps_absolute_links_inside(tmp_path: Path) -> None:
    (tmp_path / "lib/x").mkdir(parents=True)
    (tmp_path / "lib/x/ld.so.2").write_bytes(b"loader")
    (tmp_path / "lib64").mkdir()
    os.symlink("/lib/x/ld.so.2", tmp_path / "lib64/ld.so.2")
    os.symlink("x", tmp_path / "lib/alias")
    assert resolve_in_root(tmp_path, "/lib64/ld.so.2") == tmp_path / "lib/x/ld.so.2"
    assert resolve_in_root(tmp_path, "/lib/alias/../x/ld.so.2") == tmp_path / "lib/x/ld.so.2"
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(ElfError):
        resolve_in_root(tmp_path, "/loop")


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("little", [True, False])
def test_section_of_relocatable(is64: bool, little: bool) -> None:
    data = relocatable_elf({".text": b"\x90" * 5, ".modinfo": b"license=GPL\0depends=a,b\0"},
                           is64=is64, little=little)
    assert section(data, ".modinfo") == b"license=GPL\0depends=a,b\0"
    assert section(data, ".nothere") is None
    info = parse_elf(data)
    assert (info.elf_class, info.little_endian, info.elf_type) == (64 if is64 else 32, little, 1)
    assert info.needed == () and info.interp is None


def test_not_elf() -> None:
    with pytest.raises(ElfError):
        parse_elf(b"#!/bin/sh\n")
    with pytest.raises(ElfError):
        parse_elf(b"\x7fELF\x02\x01\x01" + bytes(9))


@pytest.mark.skipif(not Path("/bin/busybox").is_file(), reason="busybox is not installed")
def test_busybox_applets_match_busybox_list() -> None:
    listed = _output(["/bin/busybox", "--list"]).split()
    applets = busybox_applets(Path("/bin/busybox").read_bytes())
    assert applets == sorted(a for a in listed if a != "busybox")
    assert {"sh", "modprobe", "ip", "mount"} <= set(applets)
