"""/proc/slabinfo (format 2.1) as typed data, and the difference between two captures.

Producer: mm/slab_common.c:print_slabinfo_header() and cache_show(), filled by
mm/slub.c:get_slabinfo().  Each line is printed as
``"%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu"``.
Under SLUB the tunables and sharedavail are always 0, ``objsize`` is ``s->size`` (not
object_size) and active_slabs == num_slabs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kmodlab.observe.errors import ParseError

SOURCE = "/proc/slabinfo"
HEADER = "slabinfo - version: 2.1"
_INT = re.compile(r"^\d+$")


@dataclass(frozen=True)
class SlabCache:
    """One cache line.  ``objsize`` is s->size (mm/slab_common.c:cache_show())."""

    name: str
    active_objs: int
    num_objs: int
    objsize: int
    objperslab: int
    pagesperslab: int
    active_slabs: int
    num_slabs: int
    limit: int = 0
    batchcount: int = 0
    sharedfactor: int = 0
    sharedavail: int = 0

    @property
    def order(self) -> int:
        """Slab order: pagesperslab is printed as ``1 << oo_order(s->oo)``."""
        return self.pagesperslab.bit_length() - 1

    @property
    def free_objs(self) -> int:
        """Objects free on node partial lists (cpu and cpu-partial slabs count as active)."""
        return self.num_objs - self.active_objs


@dataclass(frozen=True)
class SlabInfo(Mapping[str, SlabCache]):
    """All caches of one capture, by name, in the order the kernel listed them (newest first).

    Two caches can carry the same name (a 6.1 cache leaked by kmem_cache_destroy() stays listed:
    mm/slab_common.c:shutdown_cache() returns -EBUSY before list_del(); docs/kernel-notes.md,
    "kmem_cache_destroy with live objects"); the later ones are kept under ``"<name>#2"``,
    ``"<name>#3"`` and their names are in ``duplicates``.
    """

    caches: dict[str, SlabCache]
    duplicates: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> SlabCache:
        return self.caches[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.caches)

    def __len__(self) -> int:
        return len(self.caches)

    def kmalloc(self, prefix: str = "kmalloc-") -> dict[str, SlabCache]:
        """Caches whose name starts with ``prefix`` (``kmalloc-`` also matches cg/rcl variants)."""
        return {n: c for n, c in self.caches.items() if n.startswith(prefix)}


def _ints(fields: list[str], count: int, what: str, line_no: int, line: str) -> list[int]:
    if len(fields) != count or not all(_INT.match(f) for f in fields):
        raise ParseError(SOURCE, line_no, line, f"expected {count} unsigned integers {what}")
    return [int(f) for f in fields]


def parse_cache_line(line: str, line_no: int = 1) -> SlabCache:
    """Parse one data line.  The name is taken as everything before the five numbers, so a
    name with a space (which the kernel only warns about, mm/slab_common.c:
    kmem_cache_sanity_check()) still parses."""
    parts = line.split(" : ")
    if len(parts) != 3 or not parts[1].startswith("tunables") or not parts[2].startswith("slabdata"):
        raise ParseError(SOURCE, line_no, line, "expected '<name> <5 numbers> : tunables "
                                                "<3 numbers> : slabdata <3 numbers>'")
    head = parts[0].rstrip().rsplit(None, 5)
    if len(head) != 6 or not head[0].strip():
        raise ParseError(SOURCE, line_no, line, "expected a cache name and 5 numbers")
    name = head[0].strip()
    active, num, objsize, perslab, pages = _ints(head[1:], 5, "after the name", line_no, line)
    limit, batch, shared = _ints(parts[1].split()[1:], 3, "after 'tunables'", line_no, line)
    aslabs, nslabs, avail = _ints(parts[2].split()[1:], 3, "after 'slabdata'", line_no, line)
    if active > num:
        raise ParseError(SOURCE, line_no, line, f"active_objs {active} > num_objs {num}")
    if pages == 0 or pages & (pages - 1):
        raise ParseError(SOURCE, line_no, line, f"pagesperslab {pages} is not a power of two")
    return SlabCache(name, active, num, objsize, perslab, pages, aslabs, nslabs,
                     limit, batch, shared, avail)


def parse_slabinfo(text: str) -> SlabInfo:
    """Parse a whole /proc/slabinfo capture; raises ParseError on the first malformed line."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ParseError(SOURCE, 1, lines[0] if lines else "", f"expected the header {HEADER!r}")
    if len(lines) < 2 or not lines[1].startswith("# name"):
        raise ParseError(SOURCE, 2, lines[1] if len(lines) > 1 else "",
                         "expected the column header '# name ...'")
    caches: dict[str, SlabCache] = {}
    duplicates: list[str] = []
    for line_no, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        cache = parse_cache_line(line, line_no)
        key = cache.name
        n = 1
        while key in caches:
            n += 1
            key = f"{cache.name}#{n}"
        if n > 1:
            duplicates.append(cache.name)
        caches[key] = cache
    return SlabInfo(caches, tuple(duplicates))


@dataclass(frozen=True)
class SlabCacheDelta:
    """Change of one cache between two captures (after minus before)."""

    name: str
    before: SlabCache
    after: SlabCache

    @property
    def active_objs(self) -> int:
        return self.after.active_objs - self.before.active_objs

    @property
    def num_objs(self) -> int:
        return self.after.num_objs - self.before.num_objs

    @property
    def num_slabs(self) -> int:
        return self.after.num_slabs - self.before.num_slabs

    @property
    def geometry_changed(self) -> bool:
        """A different objsize/objperslab/order means a different cache reusing the name."""
        b, a = self.before, self.after
        return (b.objsize, b.objperslab, b.pagesperslab) != (a.objsize, a.objperslab, a.pagesperslab)


@dataclass(frozen=True)
class SlabInfoDiff:
    appeared: dict[str, SlabCache] = field(default_factory=dict)
    disappeared: dict[str, SlabCache] = field(default_factory=dict)
    changed: dict[str, SlabCacheDelta] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.appeared or self.disappeared or self.changed)


def diff_slabinfo(before: SlabInfo, after: SlabInfo) -> SlabInfoDiff:
    """Caches that appeared, disappeared, or whose counters or geometry changed."""
    appeared = {n: c for n, c in after.items() if n not in before}
    disappeared = {n: c for n, c in before.items() if n not in after}
    changed = {
        n: SlabCacheDelta(n, before[n], c)
        for n, c in after.items()
        if n in before and before[n] != c
    }
    return SlabInfoDiff(appeared, disappeared, changed)


# Short names for module-qualified use: ``slabinfo.parse(text)``, ``slabinfo.diff(a, b)``.
parse = parse_slabinfo
diff = diff_slabinfo
