"""The one leak detector: what a module left behind after rmmod, found without being told where
to look.  ``kmodlab run``, :func:`kmodlab.assertions.assert_clean_unload` and the lab grader's
``no_leaks`` / ``cache_destroyed`` checks all call it.

It compares the /proc snapshot taken before insmod (``before``) with the one after rmmod
(``after``), and uses the one taken while the module was loaded (``loaded``) and the module's
address ranges (its :class:`Footprint`, read from sysfs while it was loaded) to attribute what
remains:

* **slab objects**: every cache listed in both snapshots with the same geometry whose
  ``active_objs`` grew past :attr:`Tolerances.slab_objects` objects *and*
  :attr:`Tolerances.slab_bytes` bytes (``kmalloc-*`` and every other cache);
* **caches**: a cache listed after rmmod that was not listed before insmod (the module created
  it and never called ``kmem_cache_destroy()``, or destroyed it with live objects);
* **vmalloc areas** new since ``before`` that belong to the module: the caller names the module
  (``func+0x../0x.. [module]``); or the caller is a raw address (``0xffffffffc0a01234``, how
  ``%pS`` prints an address no symbol covers: the module is gone, or it was ``__init`` text)
  inside one of the module's sections; or (when the module's sections are not known) the
  caller is a raw address and the same range was named after the module while it was loaded.
  Any such area is a leak (no tolerance).  New areas of other callers count when
  their pages pass :attr:`Tolerances.vmalloc_other_pages` (a kernel helper that vmalloc()ed on
  the module's behalf);
* **pages**: memory gone from the free lists (``MemFree``) that neither a /proc/meminfo
  counter (page cache, anonymous memory, slab, vmalloc, per-CPU memory, page tables) nor the
  per-CPU page lists (``count:`` in /proc/zoneinfo) account for: ``alloc_pages()`` and
  friends, past :attr:`Tolerances.pages`;
* **per-CPU memory**: growth of /proc/meminfo ``Percpu`` past :attr:`Tolerances.percpu_kb`.

The slab counters are exact only when both snapshots were taken right after shrinking every
cache (:func:`kmodlab.phases.shrink_slabs`: CPU and per-CPU partial slabs are flushed, so
``active_objs`` counts live objects), and pages only when they carry /proc/zoneinfo:
:func:`capture` takes such a snapshot, and the runner and the lab grader use it.
Limits: a cache SLUB merged into an existing one has no slabinfo line of its own (its objects
still count in the cache it joined); leaks below the tolerances (under 64 KiB of one cache,
under 4 MiB of pages) are not reported.  The tolerances are the drift of an idle guest (a
module that allocates nothing, loaded and unloaded many times) with a margin: see
:data:`DEFAULT_TOLERANCES` for the measurement.
"""

from __future__ import annotations

import io
import re
import struct
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from kmodlab.observe.slabinfo import SlabCache
from kmodlab.observe.vmallocinfo import VmallocEntry
from kmodlab.observe.zoneinfo import listed_pages
from kmodlab.phases import ProcSnapshot, shrink_slabs

if TYPE_CHECKING:
    from kmodlab.guest import Guest

PAGE_KB = 4
"""Page size (KiB) when a snapshot does not say (4 KiB: Debian's amd64, arm64 and 686 kernels;
arm64-16k kernels use 16).  :func:`capture` reads the guest's own (:func:`page_kb`)."""

# --------------------------------------------------------------------------- tolerances


@dataclass(frozen=True)
class Tolerances:
    """How much a quantity may grow between insmod and rmmod before it counts as a leak."""

    slab_objects: int
    """Per cache: more objects than this *and* more bytes than ``slab_bytes`` is a leak."""
    slab_bytes: int
    pages: int
    """Pages gone from the free lists that no meminfo counter accounts for."""
    percpu_kb: int
    """Growth of meminfo Percpu (kB)."""
    vmalloc_other_pages: int
    """Pages of new vmalloc areas whose caller is not the module (kernel thread stacks...)."""
    caches: Mapping[str, int] = field(default_factory=dict)
    """Named caches judged by objects alone: more than this many objects is a leak (a lab's
    ``no_leaks: {caches: [...], tolerance: N}``)."""
    free_pages: int | None = None
    """If set: buddy-free pages (/proc/buddyinfo) may end at most this far below ``before``
    (a lab's ``free_pages_tolerance``), whatever accounts for them."""

    def as_dict(self) -> dict[str, Any]:
        return {"slab_objects": self.slab_objects, "slab_bytes": self.slab_bytes,
                "pages": self.pages, "percpu_kb": self.percpu_kb,
                "vmalloc_other_pages": self.vmalloc_other_pages,
                **({"caches": dict(self.caches)} if self.caches else {}),
                **({"free_pages": self.free_pages} if self.free_pages is not None else {})}


DEFAULT_TOLERANCES = Tolerances(
    slab_objects=32,
    slab_bytes=64 << 10,
    pages=1024,
    percpu_kb=128,
    vmalloc_other_pages=64,
)
"""Idle drift, measured, with a margin.

Command: ``.venv/bin/python benchmarks/leak_drift.py --guests 3 --runs 10 --cpus 1,2`` (a
module that allocates nothing, tests/integration/data/leaks/kml_noleak, loaded and unloaded
10 times in each of 3 fresh guests, per kernel and CPU count: 240 runs), on 2026-12-04 with
Debian 6.1.0-57-cloud (6.1.192) and 6.12.118+deb12-cloud, x86_64 and arm64, 512 MiB guests
under TCG.  Largest growth from before insmod to after rmmod, leak snapshots (every cache
shrunk, per-CPU page lists counted):

==================  ===========================  ===========================  ==============
kernel / CPUs       slab, one cache: objects     slab, one cache: bytes       other figures
==================  ===========================  ===========================  ==============
x86_64 6.1 / 1      49 (filp)                    12,544 (filp)                pages 13,
                                                                              vmalloc 4
x86_64 6.1 / 2      409 (kmalloc-8)              28,928 (filp)                pages 323,
                                                                              vmalloc 20
x86_64 6.12 / 1     277 (kmalloc-96)             26,592 (kmalloc-96)          pages 13,
                                                                              vmalloc 8
x86_64 6.12 / 2     468 (kmalloc-8)              32,768 (names_cache)         pages 56,
                                                                              vmalloc 20
arm64 6.1 / 1       288 (kmalloc-128)            36,864 (kmalloc-128)         pages 16,
                                                                              vmalloc 8
arm64 6.1 / 2       288 (kmalloc-128)            36,864 (kmalloc-128)         pages 75,
                                                                              vmalloc 24
arm64 6.12 / 1      315 (kmalloc-96)             32,768 (kmalloc-4k)          pages 32,
                                                                              vmalloc 8
arm64 6.12 / 2      336 (kmalloc-96)             32,768 (kmalloc-4k)          pages 94,
                                                                              vmalloc 20
==================  ===========================  ===========================  ==============

("pages": unaccounted pages; "vmalloc": pages of new areas of other callers, kernel thread
stacks from kernel_clone.)  In every run: Percpu +0 kB, no cache left, no vmalloc area of the
module.  The smallest kmalloc cache swings by up to ~300 objects either way even right after
shrinking (objects freed through RCU are still live when the snapshot is read), but by at most
36 KiB: so a cache leaks when it grew by more than 32 objects *and* more than 64 KiB (1.8x the
worst bytes; 1000 kmalloc-4k objects are 4,000 KiB).  Unaccounted pages peaked at 323 (and
went as low as -100): 1024 pages (4 MiB, 3.2x).  Other callers' vmalloc pages peaked at 24:
64.  Percpu never moved; 128 kB is room for a few chunk pages populated on 2 CPUs.  Without
shrinking (the phase snapshots) one cache grew by up to 61,936 bytes (inode_cache) and 541
objects (kmalloc-8), and unaccounted pages, without the per-CPU lists, reached 510 and -291
(after the kmalloc and vmalloc families free their buffers, 8-22 MiB sit on the per-CPU lists
until drained): hence the shrunk snapshots with /proc/zoneinfo.
"""


DETECTOR_CACHES = frozenset({"kmemleak_object", "kmemleak_scan_area"})
"""Caches of the kernel's own leak detector (mm/kmemleak.c:kmemleak_init(), KMEM_CACHE(
kmemleak_object) and KMEM_CACHE(kmemleak_scan_area)): one object per tracked allocation of
anyone, freed through RCU, so they swing by hundreds of objects between any two snapshots
(measured: +331 objects, 75 KiB, around a module that leaked one object on arm64 6.12).  They
are bookkeeping, never a module's leak; what kmemleak finds is reported by kmodlab.kmemleak."""


# --------------------------------------------------------------------------- the module's addresses

SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
_STT_FUNC = 2
_STT_OBJECT = 1
_SYMBOL_KINDS = {"STT_FUNC": _STT_FUNC, "STT_OBJECT": _STT_OBJECT}


@dataclass(frozen=True)
class ElfSection:
    index: int
    name: str
    size: int
    flags: int


@dataclass(frozen=True)
class ElfSymbol:
    name: str
    section: int
    value: int
    size: int
    kind: int


@dataclass(frozen=True)
class ElfInfo:
    """The section headers and function/object symbols of a relocatable ``.ko``."""

    sections: tuple[ElfSection, ...]
    symbols: tuple[ElfSymbol, ...]

    def section(self, name: str) -> ElfSection | None:
        return next((s for s in self.sections if s.name == name), None)


def parse_elf(data: bytes) -> ElfInfo:
    """Section headers and FUNC/OBJECT symbols of an ELF file (a ``.ko``).

    pyelftools reads it: ELF32 (i386) and ELF64, either byte order, with its own bounds checks,
    which a hand-written header walk would have to repeat.  Raises ValueError on anything it
    cannot read: the caller then does without sizes and symbols."""
    try:
        elf = ELFFile(io.BytesIO(data))
        sections = tuple(ElfSection(i, sec.name, sec["sh_size"], sec["sh_flags"])
                         for i, sec in enumerate(elf.iter_sections()))
        symbols: list[ElfSymbol] = []
        for table in elf.iter_sections():
            if not isinstance(table, SymbolTableSection) or table["sh_type"] != "SHT_SYMTAB":
                continue
            for sym in table.iter_symbols():
                kind = _SYMBOL_KINDS.get(sym["st_info"]["type"])
                shndx = sym["st_shndx"]
                if kind is not None and isinstance(shndx, int) and 0 < shndx < len(sections):
                    symbols.append(ElfSymbol(sym.name, shndx, sym["st_value"], sym["st_size"],
                                             kind))
    except (ELFError, struct.error, ValueError, KeyError) as e:
        raise ValueError(f"not a readable ELF file: {e}") from e
    return ElfInfo(sections, tuple(symbols))


def read_elf(path: str | Path) -> ElfInfo | None:
    """:func:`parse_elf` of a file, or None when it cannot be read or parsed."""
    try:
        return parse_elf(Path(path).read_bytes())
    except (OSError, ValueError, struct.error):
        return None


@dataclass(frozen=True)
class Region:
    """A named address range ``[start, end)``: a section of the module, or a function in it."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Footprint:
    """Where a module lived while it was loaded: its sections (sysfs addresses, ELF sizes), its
    core range from /proc/modules, and its functions (to name a raw caller address)."""

    module: str
    sections: tuple[Region, ...] = ()
    core: Region | None = None
    functions: tuple[Region, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return bool(self.sections or self.core)

    def region_of(self, address: int) -> Region | None:
        """The section holding ``address`` (the /proc/modules core range when no section
        address is known)."""
        for region in self.sections:
            if region.start <= address < region.end:
                return region
        if not self.sections and self.core is not None and \
                self.core.start <= address < self.core.end:
            return self.core
        return None

    def contains(self, address: int) -> bool:
        return self.region_of(address) is not None

    def symbolize(self, address: int) -> str | None:
        """``func+0x18/0x30`` (or ``.init.text+0x15``) for an address of the module."""
        starts = [f.start for f in self.functions]
        i = bisect_right(starts, address) - 1
        if i >= 0:
            f = self.functions[i]
            if f.start <= address < max(f.end, f.start + 1):
                return f"{f.name}+{address - f.start:#x}/{f.end - f.start:#x}"
        region = self.region_of(address)
        if region is not None:
            return f"{region.name}+{address - region.start:#x}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module,
                "sections": {r.name: [hex(r.start), hex(r.end)] for r in self.sections},
                "core": [hex(self.core.start), hex(self.core.end)] if self.core else None,
                "notes": list(self.notes)}


SECTIONS_MARK = "--kmodlab-sections--"


def footprint_command(module: str) -> str:
    """One guest command printing the module's /proc/modules line and every
    ``/sys/module/<module>/sections/<name>`` address (root sees real addresses)."""
    from kmodlab.channel.protocol import shell_quote

    line = shell_quote(f"^{re.escape(module)} ")
    sect = shell_quote(f"/sys/module/{module}/sections")
    return (f"grep -E {line} /proc/modules; echo {SECTIONS_MARK}; "
            f"for f in {sect}/.* {sect}/*; do [ -f \"$f\" ] && "
            f"echo \"${{f##*/}} $(cat \"$f\")\"; done 2>/dev/null; true")


_HEX = re.compile(r"^0x([0-9a-fA-F]+)$")


def _address(text: str) -> int | None:
    m = _HEX.match(text.strip())
    value = int(m.group(1), 16) if m else 0
    return value or None     # 0: hidden (kptr_restrict), or not known


def parse_footprint(module: str, text: str, elf: ElfInfo | None = None) -> Footprint:
    """The output of :func:`footprint_command` (and the module's ELF, for sizes and symbols)."""
    head, _, tail = text.partition(SECTIONS_MARK)
    notes: list[str] = []
    core = None
    for line in head.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == module and fields[1].isdigit():
            start = _address(fields[5])
            if start is not None:
                core = Region("core", start, start + int(fields[1]))
    addresses: dict[str, int] = {}
    for line in tail.splitlines():
        fields = line.split()
        if len(fields) == 2 and (addr := _address(fields[1])) is not None:
            addresses[fields[0]] = addr
    sections: list[Region] = []
    functions: list[Region] = []
    if addresses and elf is None:
        notes.append("the module's ELF file could not be read: section sizes unknown")
    if elf is not None:
        for sec in elf.sections:
            start = addresses.get(sec.name)
            if start is not None and sec.size and sec.flags & SHF_ALLOC:
                sections.append(Region(sec.name, start, start + sec.size))
        for sym in elf.symbols:
            sec = elf.sections[sym.section]
            start = addresses.get(sec.name)
            if start is not None and sym.kind == _STT_FUNC:
                functions.append(Region(sym.name, start + sym.value,
                                        start + sym.value + sym.size))
    # module_init()/module_exit() add the aliases init_module/cleanup_module: name the function
    # by its own name.
    aliases = {"init_module", "cleanup_module"}
    best: dict[int, Region] = {}
    for f in sorted(functions, key=lambda r: (r.start, r.name in aliases, r.name)):
        best.setdefault(f.start, f)
    functions = list(best.values())
    if core is None and not sections:
        notes.append(f"neither /proc/modules nor /sys/module/{module}/sections showed the "
                     "module's addresses: raw caller addresses cannot be attributed to it")
    return Footprint(module, tuple(sorted(sections, key=lambda r: r.start)), core,
                     tuple(sorted(functions, key=lambda r: r.start)), tuple(notes))


def read_footprint(guest: Guest, module: str, ko_path: str | Path | None = None) -> Footprint:
    """The footprint of ``module`` (loaded in ``guest``), with sizes and symbols from
    ``ko_path``.  One round trip."""
    result = guest.run(footprint_command(module), isolate=False)
    return parse_footprint(module, result.stdout, read_elf(ko_path) if ko_path else None)


# --------------------------------------------------------------------------- snapshots

ZONEINFO = "/proc/zoneinfo"
PAGE_SIZE_KEY = "KernelPageSize"
"""``raw`` key of the guest's page size: ``KernelPageSize:  4 kB`` from /proc/self/smaps
(fs/proc/task_mmu.c, show_smap_vma_flags' neighbour __show_smap: the kernel's own PAGE_SIZE for
the mapping), so a 16K-page kernel is measured, not assumed."""


def capture(guest: Guest) -> ProcSnapshot:
    """The leak detector's snapshot: every slab cache shrunk first
    (:func:`kmodlab.phases.shrink_slabs`), then the /proc files of a
    :class:`~kmodlab.phases.ProcSnapshot` with ``/proc/zoneinfo`` (its per-CPU page list
    counts) and the page size kept in ``raw``, in one round trip."""
    shrink_slabs(guest, True)
    return ProcSnapshot.capture(guest, extra={
        ZONEINFO: f"cat {ZONEINFO}",
        PAGE_SIZE_KEY: f"grep -m1 {PAGE_SIZE_KEY} /proc/self/smaps || true"})


def page_kb(snapshot: ProcSnapshot) -> int:
    """The guest's page size in KiB as :func:`capture` read it (:data:`PAGE_KB` if unknown)."""
    text = snapshot.raw.get(PAGE_SIZE_KEY, "") if snapshot.raw else ""
    m = re.search(r"(\d+)\s*kB", text)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else PAGE_KB


def pcp_pages(snapshot: ProcSnapshot) -> int | None:
    """Pages on the per-CPU page lists (``count:`` of every pageset in /proc/zoneinfo), or None
    when the snapshot has no zoneinfo.  They are neither in MemFree nor in /proc/buddyinfo."""
    return listed_pages(snapshot.raw.get(ZONEINFO) if snapshot.raw else None)


# --------------------------------------------------------------------------- what changed

@dataclass(frozen=True)
class SlabGrowth:
    cache: str
    objects: int
    objsize: int

    @property
    def bytes(self) -> int:
        return self.objects * self.objsize


@dataclass(frozen=True)
class ModuleArea:
    """A vmalloc area left by the module, and how it was attributed to it."""

    entry: VmallocEntry
    how: str            # "caller names the module", "caller address in <section>", ...
    caller: str         # the module's function that allocated it, as well as known


@dataclass(frozen=True)
class Measurement:
    """Every quantity the detector compares (after rmmod minus before insmod), unjudged."""

    slab: tuple[SlabGrowth, ...] = ()
    caches_left: tuple[tuple[str, SlabCache], ...] = ()   # (slabinfo key, cache)
    caches_created: tuple[str, ...] = ()    # keys of caches_left listed while it was loaded
    module_areas: tuple[ModuleArea, ...] = ()
    other_areas: tuple[VmallocEntry, ...] = ()
    free_pages_lost: int = 0                # buddyinfo free pages before - after
    free_kb_lost: int = 0                   # MemFree before - after
    pcp_pages: int | None = None            # growth of the per-CPU page lists (zoneinfo)
    unaccounted_kb: int = 0                 # of MemFree's loss, in no counter nor pcp list
    percpu_kb: int = 0
    meminfo_kb: dict[str, int] = field(default_factory=dict)
    confirmed: int = 0                      # later snapshots the quantities persisted in
    page_kb: int = PAGE_KB                  # the guest's page size (:func:`page_kb`)

    @property
    def other_area_pages(self) -> int:
        return sum(e.pages for e in self.other_areas)

    def drift(self) -> dict[str, int]:
        """The largest value of each judged quantity (what an idle guest's drift is made of)."""
        return {
            "slab_objects_max": max((g.objects for g in self.slab), default=0),
            "slab_bytes_max": max((g.bytes for g in self.slab), default=0),
            "caches_left": len(self.caches_left),
            "module_areas": len(self.module_areas),
            "vmalloc_other_pages": self.other_area_pages,
            "unaccounted_pages": self.unaccounted_kb // self.page_kb,
            "percpu_kb": self.percpu_kb,
        }


# Meminfo counters of memory that is not free but accounted for; what MemFree lost beyond their
# growth is memory no counter shows (alloc_pages() and friends, and the per-CPU page lists).
# KernelStack is left out: with VMAP_STACK (Debian's x86_64 and arm64 kernels) stacks are
# vmalloc()ed and already in VmallocUsed.
ACCOUNTED_KEYS = ("Buffers", "Cached", "SwapCached", "AnonPages", "SReclaimable", "SUnreclaim",
                  "PageTables", "SecPageTables", "Percpu", "VmallocUsed")
MEMINFO_KEYS = ("MemFree", *ACCOUNTED_KEYS, "KernelStack")


def _area_key(e: VmallocEntry) -> tuple[str, str, int, str]:
    """Where an area is: start, end (%pK-hashed, stable within a boot), size, kind."""
    return (e.start, e.end, e.size, e.kind)


def _area_id(e: VmallocEntry) -> tuple[str, str, int, str, str]:
    """An area and who allocated it: the same range allocated again by someone else (a freed
    area reused for a kernel thread stack) is another area."""
    return (*_area_key(e), e.caller_key)


def _new_areas(before: Iterable[VmallocEntry], after: Iterable[VmallocEntry]
               ) -> list[VmallocEntry]:
    """Areas of ``after`` not in ``before`` (as a multiset of :func:`_area_id`)."""
    seen = Counter(_area_id(e) for e in before)
    new: list[VmallocEntry] = []
    for e in after:
        key = _area_id(e)
        if seen[key]:
            seen[key] -= 1
        else:
            new.append(e)
    return new


def _raw_address(entry: VmallocEntry) -> int | None:
    if entry.raw_caller is None:
        return None
    try:
        return int(entry.raw_caller, 16)
    except ValueError:
        return None


def measure(before: ProcSnapshot, after: ProcSnapshot, *, module: str,
            loaded: ProcSnapshot | None = None, footprint: Footprint | None = None,
            confirm: Sequence[ProcSnapshot] = ()) -> Measurement:
    """What changed between ``before`` (insmod) and ``after`` (rmmod), attributed to ``module``
    as far as ``loaded`` and ``footprint`` allow.  With ``confirm`` (later snapshots after
    rmmod) each quantity is the smallest it was in any of them: what persists."""
    first = _measure_one(before, after, module=module, loaded=loaded, footprint=footprint)
    later = [_measure_one(before, c, module=module, loaded=loaded, footprint=footprint)
             for c in confirm]
    return _persisting(first, later) if later else first


def _persisting(first: Measurement, later: list[Measurement]) -> Measurement:
    """``first`` with every quantity lowered to its minimum over ``later`` measurements."""
    everyone = [first, *later]
    slab: list[SlabGrowth] = []
    for g in first.slab:
        counts = [next((x.objects for x in m.slab if x.cache == g.cache), 0) for m in later]
        objects = min([g.objects, *counts])
        if objects:
            slab.append(SlabGrowth(g.cache, objects, g.objsize))
    slab.sort(key=lambda g: (-g.bytes, g.cache))
    keys = [{k for k, _c in m.caches_left} for m in later]
    left = tuple((k, c) for k, c in first.caches_left if all(k in ks for ks in keys))
    areas = [{_area_key(e) for e in m.other_areas} for m in later]
    other = tuple(e for e in first.other_areas if all(_area_key(e) in a for a in areas))
    pcps = [m.pcp_pages for m in everyone]
    return Measurement(
        tuple(slab), left, tuple(k for k in first.caches_created if any(k == x for x, _ in left)),
        first.module_areas, other,
        min(m.free_pages_lost for m in everyone), min(m.free_kb_lost for m in everyone),
        None if None in pcps else min(p for p in pcps if p is not None),
        min(m.unaccounted_kb for m in everyone), min(m.percpu_kb for m in everyone),
        first.meminfo_kb, len(later), first.page_kb)


def _measure_one(before: ProcSnapshot, after: ProcSnapshot, *, module: str,
                 loaded: ProcSnapshot | None, footprint: Footprint | None) -> Measurement:
    # slab: caches in both, same geometry
    growth: list[SlabGrowth] = []
    for name, a in after.slabinfo.items():
        b = before.slabinfo.get(name)
        if name in DETECTOR_CACHES:
            continue
        if b is None or (b.objsize, b.objperslab, b.pagesperslab) != (
                a.objsize, a.objperslab, a.pagesperslab):
            continue
        if a.active_objs != b.active_objs:
            growth.append(SlabGrowth(name, a.active_objs - b.active_objs, a.objsize))
    growth.sort(key=lambda g: (-g.bytes, g.cache))
    left = [(n, c) for n, c in after.slabinfo.items() if n not in before.slabinfo]
    created = tuple(n for n, _c in left if loaded is not None and n in loaded.slabinfo)

    # vmalloc: areas new since before, attributed to the module or not
    loaded_named: set[tuple[str, str, int, str]] = set()
    if loaded is not None:
        loaded_named = {_area_key(e) for e in loaded.vmallocinfo if e.module == module}
    mine: list[ModuleArea] = []
    other: list[VmallocEntry] = []
    for e in _new_areas(before.vmallocinfo, after.vmallocinfo):
        if e.kind != "area":
            continue            # vm_map_ram / lazily freed ranges: no owner, no pages
        address = _raw_address(e)
        region = footprint.region_of(address) if footprint and address is not None else None
        if e.module == module:
            mine.append(ModuleArea(e, "its caller names the module", str(e.caller)))
        elif region is not None:
            name = footprint.symbolize(address) if footprint and address is not None else None
            mine.append(ModuleArea(e, f"its caller {e.raw_caller} is in the module's "
                                      f"{region.name}", name or str(e.raw_caller)))
        elif (_area_key(e) in loaded_named and address is not None
              and (footprint is None or not footprint.sections)):
            # The caller is no longer named and nothing says where the module was: the area
            # the module held at this very range while loaded.  (A caller that is named again
            # is someone else's allocation reusing the range.)
            named = next(x for x in loaded.vmallocinfo  # type: ignore[union-attr]
                         if _area_key(x) == _area_key(e) and x.module == module)
            mine.append(ModuleArea(e, "the module allocated it while loaded",
                                   str(named.caller)))
        else:
            other.append(e)

    # pages and per-CPU memory: meminfo
    mb, ma = before.meminfo, after.meminfo
    deltas = {k: ma[k] - mb[k] for k in MEMINFO_KEYS if k in ma and k in mb}
    lost = -deltas.get("MemFree", 0)
    accounted = sum(deltas.get(k, 0) for k in ACCOUNTED_KEYS)
    buddy_lost = before.buddyinfo.free_pages() - after.buddyinfo.free_pages()
    pcp_before, pcp_after = pcp_pages(before), pcp_pages(after)
    pcp = pcp_after - pcp_before if pcp_before is not None and pcp_after is not None else None
    size_kb = page_kb(after)
    unaccounted = lost - accounted - (pcp or 0) * size_kb
    return Measurement(tuple(growth), tuple(left), created, tuple(mine), tuple(other),
                       buddy_lost, lost, pcp, unaccounted, deltas.get("Percpu", 0), deltas,
                       page_kb=size_kb)


# --------------------------------------------------------------------------- verdicts

def kib(nbytes: int) -> str:
    """``4,000 KiB`` (rounded up: a leak of a few bytes is not 0 KiB)."""
    return f"{(nbytes + 1023) // 1024:,} KiB"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass(frozen=True)
class Leak:
    """One thing the module left behind.  ``kind``: slab, cache, vmalloc, vmalloc_other,
    pages, percpu, free_pages (only with :attr:`Tolerances.free_pages`), kmemleak (the kernel's
    own detector, :mod:`kmodlab.kmemleak`); ``where``: the cache, caller, counter or allocation
    site; ``count`` in ``unit``s."""

    kind: str
    where: str
    count: int
    unit: str
    bytes: int
    detail: str = ""

    def describe(self) -> str:
        """``1,000 objects in kmalloc-4k (4,000 KiB)`` and the like."""
        if self.kind == "slab":
            return f"{_plural(self.count, self.unit)} in {self.where} ({kib(self.bytes)})"
        if self.kind == "cache":
            return f"cache {self.where} still exists ({self.detail})"
        if self.kind in ("vmalloc", "vmalloc_other"):
            return (f"{_plural(self.count, 'vmalloc ' + self.unit)} ({kib(self.bytes)}) "
                    f"allocated by {self.where}" + (f"; {self.detail}" if self.detail else ""))
        if self.kind == "pages":
            return (f"{_plural(self.count, self.unit)} ({kib(self.bytes)}) gone from the free "
                    f"lists{'; ' + self.detail if self.detail else ''}")
        if self.kind == "free_pages":
            return (f"{self.count} fewer free pages in /proc/buddyinfo ({kib(self.bytes)}; "
                    f"{self.detail})")
        if self.kind == "percpu":
            return f"{kib(self.bytes)} of per-CPU memory ({self.detail})"
        if self.kind == "kmemleak":
            return (f"{_plural(self.count, 'object')} ({self.bytes:,} bytes) no pointer refers "
                    f"to, allocated at {self.where} (kmemleak)")
        return f"{self.kind} {self.where}: {self.count} {self.unit} ({kib(self.bytes)})"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "count": self.count, "unit": self.unit,
                "bytes": self.bytes, "detail": self.detail, "text": self.describe()}


@dataclass(frozen=True)
class LeakReport:
    """The detector's verdict on one unload: ``leaks`` (empty when clean), the raw
    ``measurement`` and the ``tolerances`` it was judged with, and ``notes`` on what could not
    be compared."""

    module: str
    leaks: tuple[Leak, ...]
    measurement: Measurement
    tolerances: Tolerances
    notes: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return not self.leaks

    def of_kind(self, *kinds: str) -> list[Leak]:
        return [leak for leak in self.leaks if leak.kind in kinds]

    @property
    def leaked_bytes(self) -> int:
        return sum(leak.bytes for leak in self.leaks)

    def summary(self) -> str:
        """``leaked: 1,000 objects in kmalloc-4k (4,000 KiB)`` or ``no leaks``."""
        if self.clean:
            return "no leaks"
        return "leaked: " + "; ".join(leak.describe() for leak in self.leaks)

    def as_dict(self) -> dict[str, Any]:
        return {"module": self.module, "clean": self.clean, "summary": self.summary(),
                "leaks": [leak.as_dict() for leak in self.leaks],
                "tolerances": self.tolerances.as_dict(), "notes": list(self.notes)}


def judge(measurement: Measurement, module: str,
          tolerances: Tolerances = DEFAULT_TOLERANCES, notes: Iterable[str] = ()
          ) -> LeakReport:
    """Turn a :class:`Measurement` into leaks, by ``tolerances``."""
    t = tolerances
    m = measurement
    leaks: list[Leak] = []
    for key, cache in m.caches_left:
        how = ("created while the module was loaded, never destroyed" if key in m.caches_created
               else "created between insmod and rmmod, still listed after rmmod")
        leaks.append(Leak("cache", cache.name, cache.active_objs, "object",
                          cache.num_objs * cache.objsize,
                          f"{how}; {_plural(cache.active_objs, 'object')} of "
                          f"{cache.objsize} bytes in {_plural(cache.num_slabs, 'slab')}"))
    for g in m.slab:
        named = t.caches.get(g.cache)
        if (g.objects > named if named is not None
                else g.objects > t.slab_objects and g.bytes > t.slab_bytes):
            leaks.append(Leak("slab", g.cache, g.objects, "object", g.bytes,
                              f"tolerance {named} objects" if named is not None else ""))
    by_caller: dict[str, list[ModuleArea]] = {}
    for area in m.module_areas:
        by_caller.setdefault(area.caller, []).append(area)
    for caller, areas in by_caller.items():
        pages = sum(a.entry.pages for a in areas)
        shown = sorted({str(a.entry.caller or a.entry.raw_caller) for a in areas})
        detail = (f"vmallocinfo now shows the caller as {', '.join(shown)}"
                  if shown != [caller] else "")
        leaks.append(Leak("vmalloc", f"{caller} [{module}]" if f"[{module}]" not in caller
                          else caller, len(areas), "area",
                          pages * m.page_kb * 1024 if pages else sum(a.entry.size for a in areas),
                          detail))
    other_pages = m.other_area_pages
    if other_pages > t.vmalloc_other_pages:
        callers = Counter(e.caller_key for e in m.other_areas if e.pages)
        leaks.append(Leak("vmalloc_other", ", ".join(f"{c} (x{n})" if n > 1 else c
                                                     for c, n in callers.most_common(4)),
                          sum(1 for e in m.other_areas if e.pages), "area",
                          other_pages * m.page_kb * 1024,
                          "new since insmod, callers outside the module"))
    if m.percpu_kb > t.percpu_kb:
        leaks.append(Leak("percpu", "Percpu", m.percpu_kb, "kB", m.percpu_kb * 1024,
                          f"/proc/meminfo Percpu grew by {m.percpu_kb:,} kB"))
    pages = m.unaccounted_kb // m.page_kb
    if pages > t.pages:
        leaks.append(Leak("pages", "free pages", pages, "page", pages * m.page_kb * 1024,
                          "in no /proc/meminfo counter nor per-CPU list: alloc_pages() "
                          "never freed?"))
    if t.free_pages is not None and m.free_pages_lost > t.free_pages:
        leaks.append(Leak("free_pages", "buddyinfo", m.free_pages_lost, "page",
                          m.free_pages_lost * m.page_kb * 1024,
                          f"tolerance {t.free_pages}"))
    return LeakReport(module, tuple(leaks), m, t, tuple(notes))


def find_leaks(before: ProcSnapshot, after: ProcSnapshot, *, module: str,
               loaded: ProcSnapshot | None = None, footprint: Footprint | None = None,
               tolerances: Tolerances = DEFAULT_TOLERANCES,
               confirm: Sequence[ProcSnapshot] = ()) -> LeakReport:
    """Everything ``module`` left behind between ``before`` (taken before insmod) and
    ``after`` (after rmmod); see the module docstring.  ``loaded`` (a snapshot while it was
    loaded) and ``footprint`` (:func:`read_footprint`) let vmalloc areas whose caller is a raw
    address be attributed to it; ``confirm`` (snapshots taken later, :func:`confirm_capture`)
    keeps only what persists in them."""
    notes: list[str] = []
    if footprint is None:
        notes.append("the module's addresses were not recorded: vmalloc areas are attributed "
                     "by caller name only")
    else:
        notes.extend(footprint.notes)
    m = measure(before, after, module=module, loaded=loaded, footprint=footprint,
                confirm=confirm)
    return judge(m, module, tolerances, notes)


NOISY_KINDS = frozenset({"slab", "pages", "percpu", "vmalloc_other", "free_pages"})
"""Leak kinds an idle guest's noise can produce for a moment: a slab that became a CPU slab
between the shrink and the read (its free objects count as active), pages in transit.  Before
they are reported, :func:`confirm_capture` looks again."""
CONFIRM_PAUSE = 0.5
"""Seconds the guest waits before the confirming snapshot (RCU grace periods, deferred frees
and per-CPU slab churn settle; a leak does not)."""


def needs_confirmation(report: LeakReport) -> bool:
    """The report has a leak of a kind that noise can produce (:data:`NOISY_KINDS`) and was
    not confirmed yet."""
    return report.measurement.confirmed == 0 and any(
        leak.kind in NOISY_KINDS for leak in report.leaks)


def confirm_capture(guest: Guest, pause: float = CONFIRM_PAUSE) -> ProcSnapshot:
    """A second leak snapshot (:func:`capture`) after ``pause`` seconds in the guest."""
    guest.run(f"sleep {pause:g}", isolate=False)
    return capture(guest)


__all__ = [
    "ACCOUNTED_KEYS", "CONFIRM_PAUSE", "DEFAULT_TOLERANCES", "NOISY_KINDS", "ElfInfo",
    "Footprint", "Leak", "LeakReport", "Measurement", "ModuleArea", "Region", "SlabGrowth",
    "Tolerances", "capture", "confirm_capture", "find_leaks", "footprint_command", "judge",
    "kib", "measure", "needs_confirmation", "page_kb", "parse_elf", "parse_footprint", "pcp_pages",
    "read_elf", "read_footprint",
]
