"""A deterministic cpio "newc" writer, the format the kernel unpacks as an initramfs.

Written in Python rather than shelling out to ``cpio`` so the archive is byte-for-byte
reproducible (fixed mtime, owner 0:0, sorted order, stable inode numbers): the image cache is keyed
by a hash of its inputs, and identical inputs must give an identical image.
"""

from __future__ import annotations

import gzip
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member.  ``mode`` carries the file type bits (S_IFREG, S_IFDIR...)."""

    path: str          # normalised, no leading "/", e.g. "bin/busybox"
    mode: int
    data: bytes = b""  # file contents, or the target of a symlink
    rdevmajor: int = 0
    rdevminor: int = 0

    @property
    def kind(self) -> int:
        return stat.S_IFMT(self.mode)


def normalise(path: str) -> str:
    """Archive name of a guest path: "/etc/passwd" -> "etc/passwd" (what gen_init_cpio writes)."""
    parts = [p for p in PurePosixPath("/", path).parts[1:] if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"bad path for an initramfs member: {path!r}")
    return "/".join(parts)


def _sort_key(path: str) -> tuple[str, ...]:
    # Component-wise order puts every directory before its contents, which the unpacker needs.
    return tuple(path.split("/"))


class CpioArchive:
    """An in-memory set of members; later additions replace earlier ones at the same path.

    Missing parent directories are created (mode 755) when the archive is written.
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __contains__(self, path: str) -> bool:
        return normalise(path) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, path: str) -> Entry:
        return self._entries[normalise(path)]

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        self._put(Entry(normalise(path), stat.S_IFDIR | (mode & 0o7777)))

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._put(Entry(normalise(path), stat.S_IFREG | (mode & 0o7777), bytes(data)))

    def add_symlink(self, path: str, target: str) -> None:
        self._put(Entry(normalise(path), stat.S_IFLNK | 0o777, target.encode()))

    def add_device(self, path: str, kind: str, major: int, minor: int, mode: int = 0o600) -> None:
        """``kind`` is "c" (character) or "b" (block), as in mknod."""
        type_bits = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[kind]
        self._put(Entry(normalise(path), type_bits | (mode & 0o7777), b"", major, minor))

    def _put(self, entry: Entry) -> None:
        for parent in _parents(entry.path):
            existing = self._entries.get(parent)
            if existing is not None and existing.kind != stat.S_IFDIR:
                raise ValueError(f"cannot add {entry.path!r}: {parent!r} is not a directory")
        self._entries[entry.path] = entry

    def members(self) -> list[Entry]:
        """Every member in archive order, implicit parent directories included."""
        entries = dict(self._entries)
        for path in list(entries):
            for parent in _parents(path):
                entries.setdefault(parent, Entry(parent, stat.S_IFDIR | 0o755))
        return [entries[p] for p in sorted(entries, key=_sort_key)]

    def to_bytes(self) -> bytes:
        """The uncompressed newc archive, TRAILER!!! included."""
        return write_newc(self.members())

    def to_gzip(self, level: int = 6) -> bytes:
        """The archive as one gzip member with mtime 0, so equal archives give equal bytes."""
        return gzip.compress(self.to_bytes(), compresslevel=level, mtime=0)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _header(ino: int, mode: int, nlink: int, filesize: int, rdevmajor: int, rdevminor: int,
            namesize: int) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, filesize, 0, 0, rdevmajor, rdevminor, namesize, 0)
    return MAGIC + b"".join(b"%08X" % f for f in fields)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_newc(entries: Iterable[Entry]) -> bytes:
    """Serialise entries in the given order; inode numbers are 1, 2, 3... in that order.

    Layout per member: 110-byte header, NUL-terminated name padded so the data starts on a 4-byte
    boundary, data padded to 4 bytes.  uid/gid/mtime are 0.
    """
    out = bytearray()
    for ino, entry in enumerate(entries, start=1):
        out += _member(ino, entry.path, entry.mode, entry.data, entry.rdevmajor, entry.rdevminor)
    out += _member(0, TRAILER, 0, b"", 0, 0, nlink=1)
    return bytes(out)


def _member(ino: int, name: str, mode: int, data: bytes, rdevmajor: int, rdevminor: int,
            nlink: int | None = None) -> bytes:
    raw_name = name.encode() + b"\0"
    if nlink is None:
        nlink = 2 if stat.S_ISDIR(mode) else 1
    header = _header(ino, mode, nlink, len(data), rdevmajor, rdevminor, len(raw_name))
    head = header + raw_name
    return head + _pad4(len(head)) + data + _pad4(len(data))

