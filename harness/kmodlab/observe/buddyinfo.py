"""/proc/buddyinfo: free blocks per order for each populated zone.

Producer: mm/vmstat.c:frag_show_print(): ``"Node %d, zone %8s "`` then ``"%6lu "`` per order,
so every line ends with a space.  The counts are ``zone->free_area[order].nr_free`` summed over
migratetypes; pages on per-cpu lists are not in them (mm/page_alloc.c:rmqueue_bulk() moves
them off free_area; docs/kernel-notes.md, "Buddy allocator, pcp lists and /proc/buddyinfo").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from kmodlab.observe.errors import ParseError

SOURCE = "/proc/buddyinfo"
_LINE = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+\d+)+)\s*$")
ZoneKey = tuple[int, str]


def free_pages(counts: tuple[int, ...] | list[int]) -> int:
    """Pages held by the buddy lists: sum of count[order] << order."""
    return sum(c << order for order, c in enumerate(counts))


@dataclass(frozen=True)
class BuddyInfo(Mapping[ZoneKey, tuple[int, ...]]):
    """(node, zone) -> free block counts for orders 0..N-1, in the kernel's zone order."""

    zones: dict[ZoneKey, tuple[int, ...]]

    def __getitem__(self, key: ZoneKey) -> tuple[int, ...]:
        return self.zones[key]

    def __iter__(self) -> Iterator[ZoneKey]:
        return iter(self.zones)

    def __len__(self) -> int:
        return len(self.zones)

    @property
    def nr_orders(self) -> int:
        return len(next(iter(self.zones.values()))) if self.zones else 0

    def zone(self, name: str, node: int = 0) -> tuple[int, ...]:
        return self.zones[(node, name)]

    def free_pages(self, node: int | None = None, zone: str | None = None) -> int:
        """Buddy-free pages, optionally restricted to one node and/or zone."""
        return sum(
            free_pages(c) for (n, z), c in self.zones.items()
            if (node is None or n == node) and (zone is None or z == zone)
        )


def parse_buddyinfo(text: str, nr_orders: int | None = None) -> BuddyInfo:
    """Parse a capture; every line must have the same number of orders (``nr_orders`` if given:
    11 on Debian x86_64 and arm64 with 4K pages)."""
    zones: dict[ZoneKey, tuple[int, ...]] = {}
    width = nr_orders
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise ParseError(SOURCE, line_no, line,
                             "expected 'Node <n>, zone <name> <count> <count> ...'")
        counts = tuple(int(x) for x in m.group(3).split())
        if width is None:
            width = len(counts)
        elif len(counts) != width:
            raise ParseError(SOURCE, line_no, line,
                             f"expected {width} order columns, found {len(counts)}")
        key = (int(m.group(1)), m.group(2))
        if key in zones:
            raise ParseError(SOURCE, line_no, line, f"zone {key} listed twice")
        zones[key] = counts
    if not zones:
        raise ParseError(SOURCE, 1, text[:80], "no zone lines")
    return BuddyInfo(zones)


@dataclass(frozen=True)
class BuddyDiff(Mapping[ZoneKey, tuple[int, ...]]):
    """after - before, per zone and order ((node, zone) -> deltas); zones present in only one
    capture are an error."""

    deltas: dict[ZoneKey, tuple[int, ...]]

    def __getitem__(self, key: ZoneKey) -> tuple[int, ...]:
        return self.deltas[key]

    def __iter__(self) -> Iterator[ZoneKey]:
        return iter(self.deltas)

    def __len__(self) -> int:
        return len(self.deltas)

    def free_pages(self, node: int | None = None, zone: str | None = None) -> int:
        return sum(
            free_pages(d) for (n, z), d in self.deltas.items()
            if (node is None or n == node) and (zone is None or z == zone)
        )

    def nonzero(self) -> dict[ZoneKey, dict[int, int]]:
        """Only the orders that changed: {(node, zone): {order: delta}}."""
        out: dict[ZoneKey, dict[int, int]] = {}
        for key, d in self.deltas.items():
            changed = {o: v for o, v in enumerate(d) if v}
            if changed:
                out[key] = changed
        return out


def diff_buddyinfo(before: BuddyInfo, after: BuddyInfo) -> BuddyDiff:
    if set(before) != set(after):
        raise ValueError(f"zones differ between captures: {sorted(before)} vs {sorted(after)}")
    if before.nr_orders != after.nr_orders:
        raise ValueError("captures have different numbers of orders")
    return BuddyDiff({k: tuple(a - b for a, b in zip(after[k], before[k])) for k in before})


# Short names for module-qualified use: ``slabinfo.parse(text)``, ``slabinfo.diff(a, b)``.
parse = parse_buddyinfo
diff = diff_buddyinfo
