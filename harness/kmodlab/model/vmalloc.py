"""vmalloc areas as /proc/vmallocinfo shows them, and the bookkeeping allocations they cost.

Rules: mm/vmalloc.c:__get_vm_area_node() (size page-aligned, plus one guard page unless
VM_NO_GUARD, which vmalloc never sets), __vmalloc_area_node() (the struct page * array comes from
kmalloc_node() up to PAGE_SIZE, above that from a nested __vmalloc_node() with the same caller,
which shows as a second line and puts " vpages" on the first), and the kzalloc'ed vm_struct.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmodlab.model.kmalloc import kmalloc_cache_name
from kmodlab.model.params import KernelParams


@dataclass(frozen=True)
class VmArea:
    """One /proc/vmallocinfo line of a vmalloc() call: size field (with guard), pages, flags."""

    size: int
    pages: int
    flags: tuple[str, ...]
    nested: bool = False             # holds the page-pointer array of the area before it
    array_cache: str | None = None   # kmalloc cache of this area's own page array, if kmalloc'ed


@dataclass(frozen=True)
class VmallocPlan:
    request: int
    pages: int                       # nr_pages of the main area
    areas: tuple[VmArea, ...]        # main area first, then nested page-array areas
    page_array_bytes: int            # nr_pages * sizeof(struct page *) of the main area
    vm_struct_cache: str | None      # kmalloc cache of each area's struct vm_struct

    @property
    def page_array_cache(self) -> str | None:
        """kmalloc cache of the main area's page array (None when it is vmalloc'ed)."""
        return self.areas[0].array_cache if self.areas else None

    @property
    def vmalloc_used_pages(self) -> int:
        """What /proc/meminfo VmallocUsed grows by: nr_pages of every VM_ALLOC area."""
        return sum(a.pages for a in self.areas)

    @property
    def kmalloc_objects(self) -> dict[str, int]:
        """kmalloc objects the call costs, by cache: one vm_struct per area, and the page
        array of the innermost area."""
        out: dict[str, int] = {}
        for area in self.areas:
            for cache in (self.vm_struct_cache, area.array_cache):
                if cache:
                    out[cache] = out.get(cache, 0) + 1
        return out


def vmalloc_pages(p: KernelParams, size: int) -> int:
    """nr_pages = PAGE_ALIGN(size) >> PAGE_SHIFT."""
    return -(-size // p.page_size)


def vmalloc_plan(p: KernelParams, size: int) -> VmallocPlan:
    """What vmalloc(size) creates (no huge mappings: plain vmalloc() never asks for them)."""
    vm_struct_cache = kmalloc_cache_name(p, p.vm_struct_size)
    if size <= 0:
        return VmallocPlan(size, 0, (), 0, None)
    areas: list[VmArea] = []
    request, nested = size, False
    while True:
        pages = vmalloc_pages(p, request)
        array_bytes = pages * p.pointer_size
        vmalloc_array = array_bytes > p.page_size
        flags = ("vmalloc", "vpages") if vmalloc_array else ("vmalloc",)
        cache = None if vmalloc_array else kmalloc_cache_name(p, array_bytes)
        areas.append(VmArea((pages + 1) * p.page_size, pages, flags, nested, cache))
        if not vmalloc_array:
            break
        request, nested = array_bytes, True
    return VmallocPlan(size, areas[0].pages, tuple(areas), areas[0].pages * p.pointer_size,
                       vm_struct_cache)


@dataclass(frozen=True)
class KvmallocPlan:
    """Where kvmalloc(size) ends up."""

    request: int
    vmalloc: bool                    # the vmalloc fallback was used
    ksize: int                       # ksize() of the kmalloc object (0 for vmalloc)
    areas: tuple[VmArea, ...] = ()   # vmallocinfo lines of the fallback


def pmd_size(p: KernelParams) -> int:
    """PMD_SIZE: one page table page of PTEs maps PAGE_SIZE * PAGE_SIZE / 8 bytes (2 MiB)."""
    return p.page_size * (p.page_size // p.pointer_size)


# ----------------------------------------------------------------------------- ioremap
IOREMAP_MIN_MAX_ORDER_PAGES = 7
"""include/linux/vmalloc.h: IOREMAP_MAX_ORDER defaults to 7 + PAGE_SHIFT (128 pages); arches
that override it raise it (x86: PMD_SHIFT or PUD_SHIFT, arch/x86/include/asm/page_types.h;
arm64 4K: PUD_SHIFT, arch/arm64/include/asm/memory.h), never lower it.  So an area of up to 128
pages is aligned to its size rounded up to a power of two on every kernel, and a larger one to
at least 128 pages."""


@dataclass(frozen=True)
class IoremapPlan:
    """What ioremap(phys, size) leaves in /proc/vmallocinfo, and the address it returns."""

    page_offset: int        # the returned address's offset in its page (phys's)
    area_size: int          # the line's size field: the mapped pages plus the guard page
    mapped_pages: int
    min_align: int          # the area's start is aligned to at least this
    align_exact: bool       # True: exactly this is asked for (areas of up to 128 pages)


def ioremap_plan(p: KernelParams, offset: int, size: int) -> IoremapPlan:
    """ioremap of ``size`` bytes at ``offset`` bytes into a page-aligned BAR."""
    page = p.page_size
    page_offset = offset % page
    mapped = -(-(page_offset + size) // page) * page
    order = max((mapped - 1).bit_length(), page.bit_length() - 1)
    cap = page.bit_length() - 1 + IOREMAP_MIN_MAX_ORDER_PAGES
    return IoremapPlan(page_offset, mapped + page, mapped // page, 1 << min(order, cap),
                       order <= cap)
