"""SLUB cache layout, slab order and merging (mm/slab_common.c, mm/slub.c).

All functions are pure: they take the resolved :class:`KernelParams` and numbers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kmodlab.model.errors import ModelError
from kmodlab.model.pages import get_order
from kmodlab.model.params import KernelParams


class SlabFlag(enum.Flag):
    """SLAB_* flags by name (the bit values differ between versions, so they are not used)."""

    NONE = 0
    HWCACHE_ALIGN = enum.auto()
    ACCOUNT = enum.auto()
    RECLAIM_ACCOUNT = enum.auto()
    CACHE_DMA = enum.auto()
    CACHE_DMA32 = enum.auto()
    TYPESAFE_BY_RCU = enum.auto()
    POISON = enum.auto()
    RED_ZONE = enum.auto()
    STORE_USER = enum.auto()
    CONSISTENCY_CHECKS = enum.auto()
    TRACE = enum.auto()
    NOLEAKTRACE = enum.auto()
    FAILSLAB = enum.auto()
    NO_MERGE = enum.auto()
    PANIC = enum.auto()
    MEM_SPREAD = enum.auto()
    NO_USER_FLAGS = enum.auto()
    KMALLOC = enum.auto()       # internal: set by create_kmalloc_cache()


# mm/slab_common.c
NEVER_MERGE = (SlabFlag.RED_ZONE | SlabFlag.POISON | SlabFlag.STORE_USER | SlabFlag.TRACE
               | SlabFlag.TYPESAFE_BY_RCU | SlabFlag.NOLEAKTRACE | SlabFlag.FAILSLAB
               | SlabFlag.NO_MERGE)
MERGE_SAME = SlabFlag.RECLAIM_ACCOUNT | SlabFlag.CACHE_DMA | SlabFlag.CACHE_DMA32 | SlabFlag.ACCOUNT
DEBUG_FLAGS = SlabFlag.RED_ZONE | SlabFlag.POISON | SlabFlag.STORE_USER | SlabFlag.CONSISTENCY_CHECKS


def parse_slab_flags(expr: str | SlabFlag | None, p: KernelParams | None = None) -> SlabFlag:
    """``"SLAB_HWCACHE_ALIGN | SLAB_ACCOUNT"`` -> SlabFlag; rejects flags the version lacks."""
    if expr is None:
        return SlabFlag.NONE
    if isinstance(expr, SlabFlag):
        flags = expr
    else:
        flags = SlabFlag.NONE
        for part in re.split(r"[|,\s]+", expr.strip()):
            if not part or part == "0":
                continue
            name = part.removeprefix("SLAB_")
            try:
                flags |= SlabFlag[name]
            except KeyError:
                raise ModelError(f"unknown slab flag {part!r}; known: "
                                 + ", ".join(f"SLAB_{f.name}" for f in SlabFlag if f.name
                                             not in ("NONE", "KMALLOC"))) from None
    if p is not None and SlabFlag.NO_MERGE in flags and not p.slab_no_merge_exists:
        raise ModelError(f"SLAB_NO_MERGE does not exist in {p.series} (added in 6.5); use "
                         "SLAB_NOLEAKTRACE or a usercopy region to keep a cache separate")
    return flags


def align_up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def calculate_alignment(p: KernelParams, flags: SlabFlag, align: int, size: int) -> int:
    """mm/slab_common.c:calculate_alignment(): SLAB_HWCACHE_ALIGN uses cache_line_size(),
    halved while the object fits in half of it; at least arch_slab_minalign() (8 without
    KASAN); a multiple of sizeof(void *)."""
    if SlabFlag.HWCACHE_ALIGN in flags:
        ralign = p.cache_line_size
        while size <= ralign // 2:
            ralign //= 2
        align = max(align, ralign)
    align = max(align, 8)
    return align_up(align, p.pointer_size)


@dataclass(frozen=True)
class SlabLayout:
    """Where things sit in one object slot (mm/slub.c:calculate_sizes())."""

    object_size: int
    size: int             # s->size: the slot, what /proc/slabinfo calls objsize
    align: int            # s->align
    inuse: int            # s->inuse: object plus its red zone word
    offset: int           # s->offset: free pointer
    red_left_pad: int = 0
    kasan: bool = False   # SLAB_KASAN: generic KASAN metadata follows the object

    @property
    def freeptr_outside(self) -> bool:
        return self.offset >= self.inuse


def calculate_sizes(p: KernelParams, object_size: int, align: int, flags: SlabFlag,
                    ctor: bool = False, freeptr_offset: int | None = None) -> SlabLayout:
    """mm/slub.c:calculate_sizes() (debug options as given in ``flags``; generic KASAN's
    metadata and redzone when the kernel has it).

    ``align`` is s->align as already computed by calculate_alignment().  ``freeptr_offset``
    is 6.12's kmem_cache_args.freeptr_offset for SLAB_TYPESAFE_BY_RCU caches.
    """
    if object_size <= 0:
        raise ModelError(f"object size must be positive, not {object_size}")
    ptr = p.pointer_size
    size = align_up(object_size, ptr)
    if SlabFlag.RED_ZONE in flags and size == object_size:
        size += ptr  # room for the right red zone
    inuse = size
    use_freeptr_offset = (freeptr_offset is not None and p.freeptr_offset_arg
                          and SlabFlag.TYPESAFE_BY_RCU in flags)
    orig_size = SlabFlag.STORE_USER in flags and SlabFlag.KMALLOC in flags
    outside = (
        (SlabFlag.TYPESAFE_BY_RCU in flags and not use_freeptr_offset)
        or SlabFlag.POISON in flags
        or ctor
        or (SlabFlag.RED_ZONE in flags
            and (object_size < ptr or (orig_size and p.redzone_orig_size_freeptr)))
    )
    if outside:
        offset = size
        size += ptr
    elif use_freeptr_offset:
        assert freeptr_offset is not None
        offset = freeptr_offset
    else:
        offset = (object_size // 2) // ptr * ptr
    if SlabFlag.STORE_USER in flags:
        size += 2 * p.track_size
        if orig_size:
            size += p.orig_size_bytes
    if p.kasan_generic:
        size = kasan_cache_create(p, object_size, size, ctor, SlabFlag.TYPESAFE_BY_RCU in flags)
    red_left_pad = 0
    if SlabFlag.RED_ZONE in flags:
        size += ptr
        red_left_pad = align_up(ptr, align)
        size += red_left_pad
    size = align_up(size, align)
    return SlabLayout(object_size, size, align, inuse, offset, red_left_pad, p.kasan_generic)


def kasan_optimal_redzone(object_size: int) -> int:
    """mm/kasan/generic.c:optimal_redzone(): AddressSanitizer's adaptive redzone, 16 bytes for
    small objects up to 2048 for large ones."""
    for limit, redzone in ((64, 16), (128, 32), (512, 64), (4096, 128), (1 << 14, 256),
                           (1 << 15, 512), (1 << 16, 1024)):
        if object_size <= limit - redzone:
            return redzone
    return 2048


def kasan_cache_create(p: KernelParams, object_size: int, size: int, ctor: bool,
                       rcu: bool) -> int:
    """mm/kasan/generic.c:kasan_cache_create(): the slot grows by the alloc meta, by the free
    meta where the freed object cannot hold it, and at least to object_size +
    optimal_redzone().  (The KMALLOC_MAX_SIZE caps only matter for SLAB's huge caches.)"""
    size += p.kasan_alloc_meta_size
    free_meta = p.kasan_free_meta_size
    if rcu or ctor:
        size += free_meta
    elif object_size < free_meta:
        if p.kasan_small_free_meta == "top_up" and not p.slub_debug_boot:
            size += free_meta - object_size
        else:
            size += free_meta
    return max(size, object_size + kasan_optimal_redzone(object_size))


def slab_ksize(layout: SlabLayout, flags: SlabFlag) -> int:
    """mm/slab.h:slab_ksize(): object_size with red zone/poison or KASAN, inuse with
    RCU/store-user, otherwise the whole slot s->size."""
    if flags & (SlabFlag.RED_ZONE | SlabFlag.POISON) or layout.kasan:
        return layout.object_size
    if flags & (SlabFlag.TYPESAFE_BY_RCU | SlabFlag.STORE_USER):
        return layout.inuse
    return layout.size


# ----------------------------------------------------------------------------- slab order

def order_objects(p: KernelParams, order: int, size: int) -> int:
    """mm/slub.c:order_objects(): (PAGE_SIZE << order) / size."""
    return (p.page_size << order) // size


def _calc_slab_order_61(p: KernelParams, size: int, min_objects: int, max_order: int,
                        fract_leftover: int) -> int:
    """6.1 mm/slub.c:calc_slab_order(): the 6.7+ search, started at the order that holds
    ``min_objects``, after capping huge object counts (MAX_OBJS_PER_PAGE)."""
    if order_objects(p, 0, size) > p.max_objs_per_page:
        return get_order(size * p.max_objs_per_page, p.page_shift) - 1
    return _calc_slab_order_67(p, size, get_order(min_objects * size, p.page_shift), max_order,
                               fract_leftover)


def _calc_slab_order_67(p: KernelParams, size: int, min_order: int, max_order: int,
                        fract_leftover: int) -> int:
    """6.7+ mm/slub.c:calc_slab_order(): the first order from ``min_order`` whose leftover is at
    most 1/fract_leftover of the slab."""
    order = min_order
    while order <= max_order:
        slab_size = p.page_size << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(p: KernelParams, size: int) -> int:
    """mm/slub.c:calculate_order() for s->size ``size``, with slub_min_order=0,
    slub_max_order=3 and min_objects = 4 * (fls(nr_cpus) + 1)."""
    if size <= 0:
        raise ModelError(f"slab object size must be positive, not {size}")
    max_order = p.slub_max_order
    min_objects = p.min_objects
    if p.calculate_order == "min_objects_countdown":
        min_objects = min(min_objects, order_objects(p, max_order, size))
        while min_objects > 1:
            for fraction in (16, 8, 4):
                order = _calc_slab_order_61(p, size, min_objects, max_order, fraction)
                if order <= max_order:
                    return order
            min_objects -= 1
        order = _calc_slab_order_61(p, size, 1, max_order, 1)
        if order <= max_order:
            return order
        order = _calc_slab_order_61(p, size, 1, p.max_page_order + 1, 1)
        if order <= p.max_page_order:
            return order
        raise ModelError(f"no slab order fits objects of {size} bytes")
    # "min_order_fractions": the 6.7 rework
    min_objects = min(min_objects, max(order_objects(p, max_order, size), 1))
    min_order = get_order(min_objects * size, p.page_shift)
    if order_objects(p, min_order, size) > p.max_objs_per_page:
        return get_order(size * p.max_objs_per_page, p.page_shift) - 1
    for fraction in (16, 8, 4, 2):
        order = _calc_slab_order_67(p, size, min_order, max_order, fraction)
        if order <= max_order:
            return order
    order = get_order(size, p.page_shift)
    if order <= p.max_page_order:
        return order
    raise ModelError(f"no slab order fits objects of {size} bytes")


@dataclass(frozen=True)
class SlabGeometry:
    """s->oo and s->min of a cache (mm/slub.c:calculate_sizes() end)."""

    size: int
    order: int
    objects: int
    min_order: int        # s->min: fallback order when the high-order page is not available
    min_objects: int
    page_size: int

    @property
    def pages(self) -> int:
        return 1 << self.order

    @property
    def slab_bytes(self) -> int:
        return self.page_size << self.order

    @property
    def waste(self) -> int:
        """Bytes at the end of a slab that hold no object."""
        return self.slab_bytes - self.objects * self.size


def slab_geometry(p: KernelParams, size: int) -> SlabGeometry:
    order = calculate_order(p, size)
    min_order = get_order(size, p.page_shift)
    return SlabGeometry(size, order, order_objects(p, order, size), min_order,
                        order_objects(p, min_order, size), p.page_size)


def min_partial(size: int, p: KernelParams) -> int:
    """mm/slub.c:kmem_cache_open(): clamp(ilog2(size) / 2, MIN_PARTIAL, MAX_PARTIAL) empty-ish
    slabs kept on each node's partial list."""
    return max(p.min_partial, min(p.max_partial, (size.bit_length() - 1) // 2))


def cpu_partial_objects(size: int, p: KernelParams) -> int:
    """mm/slub.c:set_cpu_partial(): 6/24/52/120 objects by s->size (5.10: 2/6/13/30; 0
    without CPU_PARTIAL)."""
    if not p.cpu_partial:
        return 0
    page, large, medium, small = p.cpu_partial_objects
    if size >= p.page_size:
        return page
    if size >= 1024:
        return large
    if size >= 256:
        return medium
    return small


# mm/slab.h:SLAB_DEBUG_FLAGS (7.2); mm/slub.c:calculate_sheaf_capacity() also leaves out
# SLAB_NOLEAKTRACE caches and the boot caches (SLAB_NO_SHEAVES).
NO_SHEAVES = DEBUG_FLAGS | SlabFlag.TRACE | SlabFlag.NOLEAKTRACE


def sheaf_capacity(size: int, flags: SlabFlag, p: KernelParams) -> int:
    """Objects in one per-CPU sheaf of a cache with s->size ``size`` (0: no sheaves, the
    kernel has none or the cache has debug flags).  7.2 mm/slub.c:calculate_sheaf_capacity()."""
    if not p.sheaves or flags & NO_SHEAVES or p.slub_debug_boot:
        return 0          # slub_debug= on the command line gives every cache debug flags
    return next(cap for below, cap in p.sheaf_capacity if size < below)


def cpu_partial_slabs(size: int, objects_per_slab: int, p: KernelParams) -> int | None:
    """mm/slub.c:slub_set_cpu_partial(): DIV_ROUND_UP(2 * nr_objects, objects per slab);
    None before 5.16, whose limit is on free objects (cpu_partial_objects())."""
    if not p.cpu_partial_in_slabs:
        return None
    nr = cpu_partial_objects(size, p)
    return -(-2 * nr // objects_per_slab) if nr else 0


# ----------------------------------------------------------------------------- merging

def create_unique_id(size: int, flags: SlabFlag) -> str:
    """mm/slub.c:create_unique_id(): the sysfs directory of a mergeable cache,
    ``:[dDaFA-]<size as %07u>``, e.g. ``:0000104`` or ``:A-0000104``."""
    letters = ""
    for flag, letter in ((SlabFlag.CACHE_DMA, "d"), (SlabFlag.CACHE_DMA32, "D"),
                         (SlabFlag.RECLAIM_ACCOUNT, "a"), (SlabFlag.CONSISTENCY_CHECKS, "F"),
                         (SlabFlag.ACCOUNT, "A")):
        if flag in flags:
            letters += letter
    return ":" + (letters + "-" if letters else "") + f"{size:07d}"


@dataclass(frozen=True)
class MergeCandidate:
    """An existing cache as find_mergeable() sees it.  ``mergeable`` is False for caches
    slab_unmergeable() refuses (ctor, usersize, NEVER_MERGE flags, kmalloc caches)."""

    name: str
    size: int
    flags: SlabFlag = SlabFlag.NONE
    mergeable: bool = True


KMALLOC_NAME = re.compile(r"^(?:dma-)?kmalloc-(?:(?:rcl|cg|rnd-\d+)-)?\d+[kM]?$")


def is_kmalloc_name(name: str) -> bool:
    return bool(KMALLOC_NAME.match(name))


KASAN_QUARANTINE = ("generic KASAN's quarantine (mm/kasan/quarantine.c:kasan_quarantine_put(), "
                    "quarantine_reduce()) keeps every cache's freed objects allocated and "
                    "releases them in batches of any cache: a shared cache's active_objs move by "
                    "objects other code freed, so no bound on them is honest")
KASAN_NEVER_MERGE = ("generic KASAN marks every cache SLAB_KASAN (6.1 mm/slab_common.c: "
                     "SLAB_NEVER_MERGE includes kasan_never_merge(); 6.12 mm/kasan/generic.c:"
                     "kasan_cache_create() adds SLAB_NO_MERGE)")


def cache_unmergeable(p: KernelParams, flags: SlabFlag, ctor: bool, usersize: int) -> str | None:
    """mm/slab_common.c:slab_unmergeable() for a cache with these properties: the reason it can
    never be a merge target (nor be merged), or None."""
    if not p.slab_merge:
        return "slab_nomerge is in effect"
    if p.kasan_generic:
        return KASAN_NEVER_MERGE
    never = flags & NEVER_MERGE
    if never:
        return f"flag SLAB_{never.name} is in SLAB_NEVER_MERGE"
    if ctor:
        return "it has a constructor"
    if usersize and p.usersize_blocks_merge:
        return "it has a usercopy region (usersize > 0)"
    return None


def find_mergeable(p: KernelParams, object_size: int, align: int, flags: SlabFlag,
                   ctor: bool, candidates: Sequence[MergeCandidate]) -> MergeCandidate | None:
    """mm/slab_common.c:find_mergeable(): the first (oldest) existing cache with the same slot
    size, the same SLAB_MERGE_SAME flags and a compatible alignment.  ``candidates`` must be
    oldest first (the reverse of /proc/slabinfo order).  kmalloc caches never qualify."""
    if not p.slab_merge or ctor or flags & NEVER_MERGE or p.kasan_generic:
        return None
    size = align_up(object_size, p.pointer_size)
    align = calculate_alignment(p, flags, align, size)
    size = align_up(size, align)
    for s in candidates:
        if not s.mergeable or is_kmalloc_name(s.name):
            continue
        if size > s.size:
            continue
        if (flags & MERGE_SAME) != (s.flags & MERGE_SAME):
            continue
        if s.size % align:
            continue
        if s.size - size >= p.pointer_size:
            continue
        return s
    return None
