"""/proc/vmallocinfo as typed entries; counts and diffs by caller.

Producer: mm/vmalloc.c:s_show() (6.1) / vmalloc_info_show() (6.12):
``"0x%pK-0x%pK %7ld"`` then optional `` %pS`` (caller), `` pages=%d``, `` phys=%pa``, the flag
words ``ioremap sparse vmalloc vmap user dma-coherent vpages`` in that order, and
``show_numa_info()``'s `` N<node>=<count>``.  Areas without a vm_struct print
``... vm_map_ram``; lazily freed ranges print ``... unpurged vm_area`` (show_purge_info()).

With kptr_restrict=0 the %pK addresses are hashed (start and end independently), so nothing
here relies on them: ``size`` is the field to use, and it includes the guard page
(mm/vmalloc.c:__get_vm_area_node()).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from kmodlab.observe.errors import ParseError

SOURCE = "/proc/vmallocinfo"

FLAG_WORDS = ("ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages")
_ADDR = r"0x(?:[0-9a-fA-F]+|\(_*ptrval_*\))"
_HEAD = re.compile(rf"^(?P<start>{_ADDR})-(?P<end>{_ADDR})\s+(?P<size>\d+)(?P<rest>.*)$")
# %pS: "func+0xoff/0xsize [module]", or a bare address when no symbol is known.
_CALLER = re.compile(
    r"^(?P<func>[^\s+]+)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)(?: \[(?P<module>[^\]]+)\])?"
)
_RAW_CALLER = re.compile(r"^0x[0-9a-f]+$")
_NUMA = re.compile(r"^N(\d+)=(\d+)$")


@dataclass(frozen=True)
class Caller:
    """A resolved %pS: ``function+0xoffset/0xsize [module]`` (module None for built-in code)."""

    function: str
    offset: int
    size: int
    module: str | None = None

    @property
    def key(self) -> str:
        """The caller without its offset: ``function [module]``."""
        return f"{self.function} [{self.module}]" if self.module else self.function

    def __str__(self) -> str:
        mod = f" [{self.module}]" if self.module else ""
        return f"{self.function}+{self.offset:#x}/{self.size:#x}{mod}"


@dataclass(frozen=True)
class VmallocEntry:
    """One line.  ``kind`` is "area" (a vm_struct), "vm_map_ram" or "unpurged"."""

    start: str
    end: str
    size: int
    kind: str = "area"
    caller: Caller | None = None
    raw_caller: str | None = None
    pages: int = 0
    phys: str | None = None
    flags: frozenset[str] = frozenset()
    numa: dict[int, int] = field(default_factory=dict)
    line_no: int = 0

    @property
    def caller_key(self) -> str:
        if self.caller is not None:
            return self.caller.key
        return self.raw_caller or f"<{self.kind}>"

    @property
    def module(self) -> str | None:
        return self.caller.module if self.caller else None

    @property
    def numa_consistent(self) -> bool:
        """show_numa_info() counts each page once, so the N<n>= counts add up to pages."""
        return not self.numa or sum(self.numa.values()) == self.pages


def parse_entry(line: str, line_no: int = 1) -> VmallocEntry:
    m = _HEAD.match(line)
    if not m:
        raise ParseError(SOURCE, line_no, line, "expected '0x<start>-0x<end> <size> ...'")
    start, end, size = m.group("start"), m.group("end"), int(m.group("size"))
    rest = m.group("rest").strip()
    if rest == "unpurged vm_area":
        return VmallocEntry(start, end, size, kind="unpurged", line_no=line_no)
    if rest == "vm_map_ram":
        return VmallocEntry(start, end, size, kind="vm_map_ram", line_no=line_no)

    caller: Caller | None = None
    raw_caller: str | None = None
    cm = _CALLER.match(rest)
    if cm:
        caller = Caller(cm.group("func"), int(cm.group("off"), 16), int(cm.group("size"), 16),
                        cm.group("module"))
        rest = rest[cm.end():].strip()
    else:
        first = rest.split(" ", 1)[0] if rest else ""
        if _RAW_CALLER.match(first):
            raw_caller = first
            rest = rest[len(first):].strip()

    pages = 0
    phys: str | None = None
    flags: set[str] = set()
    numa: dict[int, int] = {}
    for token in rest.split():
        if token.startswith("pages="):
            value = token[len("pages="):]
            if not value.isdigit():
                raise ParseError(SOURCE, line_no, line, f"bad page count {token!r}")
            pages = int(value)
        elif token.startswith("phys="):
            phys = token[len("phys="):]
        elif token in FLAG_WORDS:
            flags.add(token)
        elif nm := _NUMA.match(token):
            numa[int(nm.group(1))] = int(nm.group(2))
        else:
            raise ParseError(SOURCE, line_no, line, f"unknown field {token!r}")
    return VmallocEntry(start, end, size, "area", caller, raw_caller, pages, phys,
                        frozenset(flags), numa, line_no)


@dataclass(frozen=True)
class VmallocInfo(Sequence[VmallocEntry]):
    """All entries in file order (6.12 lists per vmap node, so not globally address-sorted)."""

    entries: tuple[VmallocEntry, ...]

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self.entries[i]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[VmallocEntry]:
        return iter(self.entries)

    def where(self, predicate: Callable[[VmallocEntry], bool]) -> VmallocInfo:
        return VmallocInfo(tuple(e for e in self.entries if predicate(e)))

    def by_module(self, module: str) -> VmallocInfo:
        return self.where(lambda e: e.module == module)

    def by_caller(self, function: str, module: str | None = None) -> VmallocInfo:
        """Entries whose caller function is ``function`` (and module, if given)."""
        return self.where(lambda e: e.caller is not None and e.caller.function == function
                          and (module is None or e.caller.module == module))

    def vmalloc_pages(self) -> int:
        """Pages of VM_ALLOC areas: what /proc/meminfo VmallocUsed counts (mm/vmalloc.c:
        vmalloc_nr_pages()), so the two can be compared."""
        return sum(e.pages for e in self.entries if "vmalloc" in e.flags)

    def count_by_caller(self) -> Counter[str]:
        return Counter(e.caller_key for e in self.entries)


def parse_vmallocinfo(text: str) -> VmallocInfo:
    entries = [parse_entry(line, n) for n, line in enumerate(text.splitlines(), start=1)
               if line.strip()]
    return VmallocInfo(tuple(entries))


@dataclass(frozen=True)
class CallerDelta:
    """Per-caller change between two captures: entries, bytes (size field) and pages."""

    count: int
    size: int
    pages: int


def diff_vmallocinfo(before: VmallocInfo, after: VmallocInfo,
                     key: Callable[[VmallocEntry], str] = lambda e: e.caller_key,
                     ) -> dict[str, CallerDelta]:
    """Callers whose entry count, total size or total pages changed (after - before)."""
    def totals(info: VmallocInfo) -> dict[str, tuple[int, int, int]]:
        out: dict[str, tuple[int, int, int]] = {}
        for e in info:
            c, s, p = out.get(key(e), (0, 0, 0))
            out[key(e)] = (c + 1, s + e.size, p + e.pages)
        return out

    b, a = totals(before), totals(after)
    result: dict[str, CallerDelta] = {}
    for k in sorted(set(a) | set(b)):
        cb, sb, pb = b.get(k, (0, 0, 0))
        ca, sa, pa = a.get(k, (0, 0, 0))
        if (ca - cb, sa - sb, pa - pb) != (0, 0, 0):
            result[k] = CallerDelta(ca - cb, sa - sb, pa - pb)
    return result


# Short names for module-qualified use: ``slabinfo.parse(text)``, ``slabinfo.diff(a, b)``.
parse = parse_vmallocinfo
diff = diff_vmallocinfo
