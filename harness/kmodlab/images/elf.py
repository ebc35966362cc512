"""Just enough ELF reading to assemble a guest userland: interpreter, NEEDED, SONAME, sections.

Host ``ldd`` runs the *host* loader, so it cannot see foreign-arch binaries and silently hides
libraries the host lacks (Debian's dropbear-bin needs libtomcrypt1, which needs libgmp10; see
docs/guest-notes.md, SSH).  Reading the dynamic section ourselves works for every arch and needs
no tool.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from kmodlab.errors import ProvisionError

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME = 0, 1, 5, 14

EM_X86_64 = 62
EM_AARCH64 = 183


class ElfError(ProvisionError):
    """A file that should be ELF is not, or is truncated."""


@dataclass(frozen=True)
class ElfInfo:
    machine: int                 # e_machine (EM_X86_64, EM_AARCH64...)
    elf_class: int               # 32 or 64
    little_endian: bool
    elf_type: int                # ET_EXEC 2, ET_DYN 3, ET_REL 1
    interp: str | None           # PT_INTERP, e.g. "/lib64/ld-linux-x86-64.so.2"
    needed: tuple[str, ...]      # DT_NEEDED in file order
    soname: str | None


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        if data[:4] != b"\x7fELF":
            raise ElfError(f"{name} is not an ELF file")
        if data[4] not in (1, 2) or data[5] not in (1, 2):
            raise ElfError(f"{name}: unsupported ELF class/encoding {data[4]}/{data[5]}")
        self.data = data
        self.name = name
        self.is64 = data[4] == 2
        self.end = "<" if data[5] == 1 else ">"
        try:
            if self.is64:
                (self.e_type, self.e_machine, _, _, self.e_phoff, self.e_shoff, _, _,
                 self.e_phentsize, self.e_phnum, self.e_shentsize, self.e_shnum,
                 self.e_shstrndx) = struct.unpack_from(self.end + "HHIQQQIHHHHHH", data, 16)
            else:
                (self.e_type, self.e_machine, _, _, self.e_phoff, self.e_shoff, _, _,
                 self.e_phentsize, self.e_phnum, self.e_shentsize, self.e_shnum,
                 self.e_shstrndx) = struct.unpack_from(self.end + "HHIIIIIHHHHHH", data, 16)
        except struct.error as exc:
            raise ElfError(f"{name}: truncated ELF header") from exc

    def unpack(self, fmt: str, offset: int) -> tuple[int, ...]:
        try:
            return struct.unpack_from(self.end + fmt, self.data, offset)
        except struct.error as exc:
            raise ElfError(f"{self.name}: truncated ELF file (offset {offset})") from exc

    def phdrs(self) -> list[tuple[int, int, int, int]]:
        """(p_type, p_offset, p_vaddr, p_filesz) of every program header."""
        out = []
        for i in range(self.e_phnum):
            off = self.e_phoff + i * self.e_phentsize
            if self.is64:
                p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = self.unpack("IIQQQQQQ", off)
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, _, _, _ = self.unpack("IIIIIIII", off)
            out.append((p_type, p_offset, p_vaddr, p_filesz))
        return out

    def shdrs(self) -> list[tuple[int, int, int]]:
        """(sh_name, sh_offset, sh_size) of every section header."""
        out = []
        for i in range(self.e_shnum):
            off = self.e_shoff + i * self.e_shentsize
            if self.is64:
                sh_name, _, _, _, sh_offset, sh_size = self.unpack("IIQQQQ", off)
            else:
                sh_name, _, _, _, sh_offset, sh_size = self.unpack("IIIIII", off)
            out.append((sh_name, sh_offset, sh_size))
        return out

    def cstring(self, offset: int) -> str:
        end = self.data.find(b"\0", offset)
        if end < 0:
            raise ElfError(f"{self.name}: unterminated string at offset {offset}")
        return self.data[offset:end].decode("utf-8", "replace")


def read_elf(path: Path) -> ElfInfo:
    """Parse the program headers and dynamic section of ``path``."""
    return parse_elf(path.read_bytes(), str(path))


def parse_elf(data: bytes, name: str = "<bytes>") -> ElfInfo:
    r = _Reader(data, name)
    phdrs = r.phdrs()
    interp = None
    dynamic = None
    for p_type, p_offset, _, p_filesz in phdrs:
        if p_type == PT_INTERP:
            interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)

    needed_offsets: list[int] = []
    soname_offset = None
    strtab_vaddr = None
    if dynamic is not None:
        fmt, size = ("qQ", 16) if r.is64 else ("iI", 8)
        off, total = dynamic
        for pos in range(off, off + total, size):
            tag, val = r.unpack(fmt, pos)
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                needed_offsets.append(val)
            elif tag == DT_SONAME:
                soname_offset = val
            elif tag == DT_STRTAB:
                strtab_vaddr = val

    needed: tuple[str, ...] = ()
    soname = None
    if strtab_vaddr is not None:
        strtab = _vaddr_to_offset(phdrs, strtab_vaddr, name)
        needed = tuple(r.cstring(strtab + o) for o in needed_offsets)
        soname = r.cstring(strtab + soname_offset) if soname_offset is not None else None
    elif needed_offsets:
        raise ElfError(f"{name}: dynamic section has DT_NEEDED but no DT_STRTAB")

    return ElfInfo(machine=r.e_machine, elf_class=64 if r.is64 else 32,
                   little_endian=r.end == "<", elf_type=r.e_type, interp=interp,
                   needed=needed, soname=soname)


def _vaddr_to_offset(phdrs: Sequence[tuple[int, int, int, int]], vaddr: int, name: str) -> int:
    for p_type, p_offset, p_vaddr, p_filesz in phdrs:
        if p_type == PT_LOAD and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise ElfError(f"{name}: address {vaddr:#x} is in no loadable segment")


def section(data: bytes, section_name: str, name: str = "<bytes>") -> bytes | None:
    """Contents of the named section (e.g. ".modinfo" of a kernel module), or None."""
    r = _Reader(data, name)
    shdrs = r.shdrs()
    if not shdrs or r.e_shstrndx >= len(shdrs):
        return None
    _, names_off, _ = shdrs[r.e_shstrndx]
    for sh_name, sh_offset, sh_size in shdrs:
        if r.cstring(names_off + sh_name) == section_name:
            return data[sh_offset:sh_offset + sh_size]
    return None


def resolve_in_root(root: Path, path: str, max_links: int = 40) -> Path:
    """Host path of guest ``path`` inside the unpacked tree ``root``, following symlinks.

    Absolute link targets (libc6's /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...) are
    taken relative to ``root``, as they would be in the guest, never to the host's /.
    """
    pending = list(PurePosixPath("/", path).parts[1:])
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            links += 1
            if links > max_links:
                raise ElfError(f"too many symlinks resolving {path} in {root}")
            target = PurePosixPath(str(candidate.readlink()))
            if target.is_absolute():
                resolved = []
                pending = list(target.parts[1:]) + pending
            else:
                pending = list(target.parts) + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


@dataclass(frozen=True)
class Library:
    soname: str
    path: Path           # the real file on the host (symlinks resolved)
    needed_by: str       # first binary/library that asked for it (for error messages)


def needed_closure(binaries: Iterable[Path], root: Path,
                   search_dirs: Sequence[str]) -> dict[str, Library]:
    """Recursive DT_NEEDED closure of ``binaries``, looked up in ``search_dirs`` inside ``root``.

    Returns soname -> Library.  A library of the wrong machine is skipped, as the loader would.
    Raises ProvisionError naming every soname that is nowhere to be found.
    """
    found: dict[str, Library] = {}
    missing: dict[str, str] = {}
    queue: list[tuple[str, ElfInfo]] = [(b.name, read_elf(b)) for b in binaries]
    while queue:
        owner, info = queue.pop(0)
        for soname in info.needed:
            if soname in found or soname in missing:
                continue
            lib = _lookup(soname, info.machine, root, search_dirs)
            if lib is None:
                missing[soname] = owner
                continue
            found[soname] = Library(soname, lib[0], owner)
            queue.append((soname, lib[1]))
    if missing:
        what = ", ".join(f"{s} (needed by {o})" for s, o in sorted(missing.items()))
        raise ProvisionError(
            f"shared libraries not found in {root} (searched {', '.join(search_dirs)}): {what}. "
            "Add the Debian package that ships them to the guest package list "
            "(kmodlab/images/guest_packages.py) or delete the guest-packages cache to refetch."
        )
    return found


def _lookup(soname: str, machine: int, root: Path,
            search_dirs: Sequence[str]) -> tuple[Path, ElfInfo] | None:
    for directory in search_dirs:
        candidate = resolve_in_root(root, f"{directory}/{soname}")
        if not candidate.is_file():
            continue
        info = read_elf(candidate)
        if info.machine == machine:
            return candidate, info
    return None
