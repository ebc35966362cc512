"""The newc writer against GNU cpio, the reference reader, plus determinism and layout rules."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from kmodlab.images.cpio import CpioArchive, Entry, normalise, write_newc

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")


def sample() -> CpioArchive:
    a = CpioArchive()
    a.add_dir("/root", 0o700)
    a.add_dir("/tmp", 0o1777)
    # Sizes 0..5 exercise every padding case of both name and data.
    for size in range(6):
        a.add_file(f"/data/f{size}", bytes(range(65, 65 + size)), 0o644)
    a.add_file("/bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    a.add_symlink("/bin/sh", "tool")
    a.add_symlink("/lib64/ld.so", "/lib/real/ld.so")
    a.add_file("/root/.ssh/authorized_keys", b"ssh-ed25519 AAAA test\n", 0o600)
    a.add_device("/dev/console", "c", 5, 1, 0o600)
    return a


def _run(cmd: list[str], cwd: Path, data: bytes) -> str:
    proc = subprocess.run(cmd, cwd=cwd, input=data, capture_output=True, check=True)
    return proc.stdout.decode()


@needs_cpio
def test_gnu_cpio_lists_every_member_in_order(tmp_path: Path) -> None:
    listing = _run(["cpio", "-it", "--quiet"], tmp_path, sample().to_bytes()).split()
    assert listing == [e.path for e in sample().members()]
    assert listing[0] == "bin"                       # parents come first...
    assert listing.index("root") < listing.index("root/.ssh") < listing.index(
        "root/.ssh/authorized_keys")                 # ...and before their children
    for path in ("data", "lib64", "root/.ssh", "dev"):   # implicit parent directories
        assert path in listing
    assert not any(p.startswith("/") for p in listing)


@needs_cpio
@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes and ownership need root")
def test_gnu_cpio_extracts_contents_modes_links_and_devices(tmp_path: Path) -> None:
    out = tmp_path / "x"
    out.mkdir()
    _run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], out, sample().to_bytes())
    for size in range(6):
        assert (out / f"data/f{size}").read_bytes() == bytes(range(65, 65 + size))
    tool = out / "bin/tool"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert os.readlink(out / "bin/sh") == "tool"
    assert os.readlink(out / "lib64/ld.so") == "/lib/real/ld.so"
    assert stat.S_IMODE((out / "root").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "tmp").stat().st_mode) == 0o1777
    keys = out / "root/.ssh/authorized_keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert (keys.stat().st_uid, keys.stat().st_gid) == (0, 0)
    console = (out / "dev/console").stat()
    assert stat.S_ISCHR(console.st_mode)
    assert (os.major(console.st_rdev), os.minor(console.st_rdev)) == (5, 1)
    assert console.st_mtime == 0


@needs_cpio
def test_verbose_listing_shows_root_owner_and_epoch(tmp_path: Path) -> None:
    listing = _run(["cpio", "-itv", "--quiet", "--numeric-uid-gid"], tmp_path, sample().to_bytes())
    for line in listing.splitlines():
        fields = line.split()
        assert fields[2:4] == ["0", "0"], line
        assert "1970" in line, line


def test_output_is_deterministic_regardless_of_insertion_order() -> None:
    a = CpioArchive()
    a.add_file("/b", b"2")
    a.add_file("/a/x", b"1")
    b = CpioArchive()
    b.add_file("/a/x", b"1")
    b.add_file("/b", b"2")
    assert a.to_bytes() == b.to_bytes()
    assert a.to_gzip() == b.to_gzip()
    assert sample().to_gzip() == sample().to_gzip()


def test_layout_alignment_inodes_and_trailer() -> None:
    data = sample().to_bytes()
    assert len(data) % 4 == 0
    pos, inodes = 0, []
    while True:
        assert data[pos:pos + 6] == b"070701"
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        ino, filesize, namesize = fields[0], fields[6], fields[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        assert data[pos + 110 + namesize - 1] == 0
        assert fields[2:4] == [0, 0] and fields[5] == 0          # uid, gid, mtime
        start = pos + 110 + namesize
        start += -start % 4
        assert start % 4 == 0
        if name == "TRAILER!!!":
            assert filesize == 0
            break
        inodes.append(ino)
        pos = start + filesize
        pos += -pos % 4
    assert inodes == list(range(1, len(inodes) + 1))
    assert pos + 124 >= len(data)


def test_later_additions_replace_and_files_cannot_hold_children() -> None:
    a = CpioArchive()
    a.add_file("/init", b"old", 0o644)
    a.add_file("init", b"new", 0o755)
    assert a.entry("/init").data == b"new"
    assert stat.S_IMODE(a.entry("/init").mode) == 0o755
    with pytest.raises(ValueError):
        a.add_file("/init/x", b"")


@pytest.mark.parametrize("bad", ["", "/", "/a/../b", ".."])
def test_bad_paths_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise(bad)


def test_normalise() -> None:
    assert normalise("/etc//passwd") == "etc/passwd"
    assert normalise("./etc/./passwd") == "etc/passwd"


def test_write_newc_accepts_explicit_entries() -> None:
    data = write_newc([Entry("x", stat.S_IFREG | 0o600, b"abc")])
    assert data.startswith(b"070701" + b"%08X" % 1)
    assert b"TRAILER!!!" in data



@needs_cpio
def test_gzip_round_trip(tmp_path: Path) -> None:
    blob = sample().to_gzip()
    assert blob[:2] == b"\x1f\x8b"
    assert gzip.decompress(blob) == sample().to_bytes()
    listing = _run(["cpio", "-it", "--quiet"], tmp_path, gzip.decompress(blob)).split()
    assert "root/.ssh/authorized_keys" in listing
