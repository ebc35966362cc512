"""Frames of a kernel report that lie in a module kmodlab built, as source lines.

The kernel prints a module's frames as ``function+0xoff/0xsize [module]`` (``%pS``,
lib/vsprintf.c symbol_string(); kernel/kallsyms.c sprint_symbol()).  The ``.ko`` is a
relocatable object built with ``-g``: its symbol table gives the function's section and offset
in it, and binutils' ``addr2line -j <section>`` reads the DWARF line table of that section (it
applies the object's relocations itself, which is why it is used rather than a DWARF reader of
our own).  The arch's toolchain prefix comes from the registry.

A frame of the call trace is a *return address*: the call that led there is the instruction
before it, so ``offset - 1`` is looked up (the caller's line, not the next one); the faulting
frame itself (``RIP:``, ``pc :``, the first line of a WARN) is looked up as it is.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kmodlab.leaks import ElfInfo, read_elf
from kmodlab.registry.arch import arch_profile

FRAME_RE = re.compile(
    r"(?P<function>[A-Za-z_.$][\w.$]*)\+0x(?P<offset>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
    r" \[(?P<module>\w+)\]")
EXACT_LINE_RE = re.compile(r"\b(RIP|pc|PC is at|EIP)\b\s*:?")
"""Lines whose frame is where the CPU was, not a return address."""


@dataclass(frozen=True)
class SourceFrame:
    """One module frame of a report and where it is in the module's source."""

    frame: str                  # kmlz_init+0xc/0x1000 [kmlz_oops_load]
    module: str
    function: str
    file: str
    line: int
    inlined_into: tuple[str, ...] = ()   # outer functions, ``f at file:line``
    via: tuple[str, ...] = ()            # kernel-header inline functions it was in, innermost first

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        """``kmlz_init+0xc/0x1000 [kmlz_oops_load] at /src/kmlz.c:9``."""
        text = f"{self.frame} at {self.location}"
        if self.inlined_into:
            text += " (inlined into " + ", ".join(self.inlined_into) + ")"
        if self.via:
            text += " (in " + ", ".join(self.via) + ")"
        return text

    def as_dict(self) -> dict[str, object]:
        return {"frame": self.frame, "module": self.module, "function": self.function,
                "file": self.file, "line": self.line, "inlined_into": list(self.inlined_into),
                "via": list(self.via)}


def addr2line_tool(arch: str) -> str | None:
    """The arch's ``addr2line`` (``aarch64-linux-gnu-addr2line``...), or None if absent."""
    tool = arch_profile(arch).cross_compile + "addr2line"
    return tool if shutil.which(tool) else (shutil.which("addr2line") and "addr2line")


@functools.lru_cache(maxsize=64)
def _elf(path: str, mtime_ns: int) -> ElfInfo | None:
    return read_elf(path)


def _lookup(tool: str, ko: Path, section: str, offset: int) -> list[tuple[str, str]]:
    """addr2line's (function, file:line) pairs, innermost first (inlining), or []."""
    try:
        out = subprocess.run([tool, "-f", "-i", "-e", str(ko), "-j", section, hex(offset)],
                             capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    lines = out.stdout.splitlines()
    pairs = [(lines[i].strip(), lines[i + 1].strip()) for i in range(0, len(lines) - 1, 2)]
    return [(f, loc) for f, loc in pairs if not loc.startswith("??")]


def symbolize(report: str, modules: Mapping[str, Path], arch: str,
              limit: int = 8) -> list[SourceFrame]:
    """The first ``limit`` distinct frames of ``report`` in ``modules`` (``{name: .ko path}``),
    with their source lines.  Frames whose module or line is unknown are left out."""
    tool = addr2line_tool(arch) if modules else None
    if tool is None:
        return []
    found: list[SourceFrame] = []
    seen: set[str] = set()
    for text_line in report.splitlines():
        exact = EXACT_LINE_RE.search(text_line) is not None or "WARNING:" in text_line
        for m in FRAME_RE.finditer(text_line):
            frame = m.group(0)
            ko = modules.get(m["module"])
            if frame in seen or ko is None or not Path(ko).is_file():
                continue
            seen.add(frame)
            source = _frame_source(tool, Path(ko), m, exact)
            if source is not None:
                found.append(source)
            if len(found) >= limit:
                return found
    return found


def _frame_source(tool: str, ko: Path, m: re.Match[str], exact: bool) -> SourceFrame | None:
    elf = _elf(str(ko), ko.stat().st_mtime_ns)
    if elf is None:
        return None
    symbol = next((s for s in elf.symbols if s.name == m["function"]), None)
    if symbol is None:
        return None
    offset = symbol.value + int(m["offset"], 16)
    if not exact and offset > symbol.value:
        offset -= 1                      # a return address: the call is just before it
    pairs = _lookup(tool, ko, elf.sections[symbol.section].name, offset)
    if not pairs:
        return None
    pairs = [(f, loc.split(" (discriminator")[0]) for f, loc in pairs]
    # An inline function of a kernel header (copy_to_user's checks...) is not where the
    # developer's mistake is: name the first line in their code, the header as "via".
    own = next((i for i, (_f, loc) in enumerate(pairs) if not _KERNEL_HEADER.search(loc)), 0)
    via = tuple(f"{f} at {loc}" for f, loc in pairs[:own])
    pairs = pairs[own:]
    function, location = pairs[0]
    file, _, line = location.rpartition(":")
    if not line.isdigit():
        return None
    file = _where_now(file, ko)
    outer = tuple(f"{f} at {loc}" for f, loc in pairs[1:])
    return SourceFrame(m.group(0), m["module"], function, file, int(line), outer, via)


_KERNEL_HEADER = re.compile(r"/linux-headers-[^/]+/|/usr/src/linux|/include/(linux|asm|uapi)/|"
                            r"/arch/[^/]+/include/")
_PARTIAL_RE = re.compile(r"/\.[^/]+\.partial-[^/]+/(?P<rest>.+)$")


def _where_now(file: str, ko: Path) -> str:
    """A build cache entry is compiled in a temporary folder renamed into place when done
    (kmodlab.paths.atomic_dir): its DWARF names the temporary path; the file is in the entry."""
    m = _PARTIAL_RE.search(file)
    if m and not Path(file).exists() and (ko.parent / m["rest"]).is_file():
        return str(ko.parent / m["rest"])
    return file


def source_lines(report: str, modules: Mapping[str, Path], arch: str) -> list[str]:
    """:func:`symbolize` as text lines, for reports."""
    return [f.describe() for f in symbolize(report, modules, arch)]


__all__ = ["FRAME_RE", "SourceFrame", "addr2line_tool", "source_lines", "symbolize"]
