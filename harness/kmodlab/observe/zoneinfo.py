"""/proc/zoneinfo: per-zone page counts and the per-cpu page list settings.

Producer: mm/vmstat.c:zoneinfo_show_print(): ``"Node %d, zone %8s"``, then ``"\\n  pages free
%lu"`` and the indented ``min/low/high/spanned/present/managed/cma`` lines, the zone's vm
stats, and under ``"\\n  pagesets"`` one ``"\\n    cpu: %i\\n              count: %i\\n
high: %i\\n              batch: %i"`` block per CPU.  Zones that are not populated print only
the header and a few lines (6.1 and 6.12 both list every zone of the node).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kmodlab.observe.errors import ParseError

SOURCE = "/proc/zoneinfo"
_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)\s*$")
_FIELD = re.compile(r"^\s+(?:pages\s+)?(free|boost|min|low|high|promo|spanned|present|managed|"
                    r"cma)\s+(\d+)\s*$")
_CPU = re.compile(r"^\s+cpu:\s+(\d+)\s*$")
_PCP = re.compile(r"^\s+(count|high|batch|high_min|high_max):\s+(\d+)\s*$")
ZoneKey = tuple[int, str]


@dataclass(frozen=True)
class Pageset:
    """One CPU's per_cpu_pages of a zone (count of pages on the lists, high, batch)."""

    cpu: int
    count: int
    high: int
    batch: int


@dataclass(frozen=True)
class Zone:
    node: int
    name: str
    pages: dict[str, int]                  # free, min, low, high, spanned, present, managed...
    pagesets: tuple[Pageset, ...] = ()

    @property
    def managed(self) -> int:
        return self.pages.get("managed", 0)

    @property
    def populated(self) -> bool:
        """populated_zone(): present pages (what /proc/buddyinfo lists)."""
        return self.pages.get("present", 0) > 0


@dataclass(frozen=True)
class ZoneInfo(Mapping[ZoneKey, Zone]):
    zones: dict[ZoneKey, Zone] = field(default_factory=dict)

    def __getitem__(self, key: ZoneKey) -> Zone:
        return self.zones[key]

    def __iter__(self) -> Iterator[ZoneKey]:
        return iter(self.zones)

    def __len__(self) -> int:
        return len(self.zones)

    def zone(self, name: str, node: int = 0) -> Zone:
        return self.zones[(node, name)]


def parse_zoneinfo(text: str) -> ZoneInfo:
    zones: dict[ZoneKey, Zone] = {}
    key: ZoneKey | None = None
    pages: dict[str, int] = {}
    sets: list[Pageset] = []
    cpu: dict[str, int] = {}
    in_pages = True

    def close_cpu() -> None:
        if cpu:
            if not {"cpu", "count", "high", "batch"} <= set(cpu):
                raise ParseError(SOURCE, 0, str(cpu), "incomplete pageset block")
            sets.append(Pageset(cpu["cpu"], cpu["count"], cpu["high"], cpu["batch"]))
            cpu.clear()

    def close_zone() -> None:
        close_cpu()
        if key is not None:
            zones[key] = Zone(key[0], key[1], dict(pages), tuple(sets))

    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if m := _HEADER.match(line):
            close_zone()
            key = (int(m.group(1)), m.group(2))
            if key in zones:
                raise ParseError(SOURCE, line_no, line, f"zone {key} listed twice")
            pages, sets, in_pages = {}, [], True
            continue
        if key is None:
            raise ParseError(SOURCE, line_no, line, "expected 'Node <n>, zone <name>' first")
        if line.strip() == "pagesets":
            in_pages = False
            continue
        if in_pages and (m := _FIELD.match(line)):
            pages.setdefault(m.group(1), int(m.group(2)))
        elif not in_pages and (m := _CPU.match(line)):
            close_cpu()
            cpu["cpu"] = int(m.group(1))
        elif not in_pages and cpu and (m := _PCP.match(line)):
            cpu[m.group(1)] = int(m.group(2))
    close_zone()
    if not zones:
        raise ParseError(SOURCE, 1, text[:80], "no zone headers")
    return ZoneInfo(zones)


parse = parse_zoneinfo


def parse_or_none(text: str | None) -> ZoneInfo | None:
    """A snapshot's /proc/zoneinfo when it has one that parses (None otherwise): what the
    optional readers below start from."""
    if not text:
        return None
    try:
        return parse_zoneinfo(text)
    except ParseError:
        return None


def listed_pages(text: str | None) -> int | None:
    """Pages on the per-CPU lists (``count:`` of every pageset): in neither MemFree nor
    /proc/buddyinfo."""
    info = parse_or_none(text)
    return None if info is None else sum(p.count for z in info.values() for p in z.pagesets)


def free_and_listed_pages(text: str | None) -> int | None:
    """Free pages of every zone plus the pages on the per-CPU lists, from one /proc/zoneinfo
    read (None when there is none, or it does not parse).  Freed pages (CMA ones too:
    mm/page_alloc.c:free_unref_page() puts MIGRATE_CMA pages on the movable list) wait on the
    per-CPU lists, counted by neither MemFree nor CmaFree."""
    info = parse_or_none(text)
    if info is None:
        return None
    return sum(z.pages.get("free", 0) + sum(p.count for p in z.pagesets) for z in info.values())
