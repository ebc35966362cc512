"""kmalloc size classes: which cache serves a size, which caches exist, their geometry.

Rules: include/linux/slab.h (KMALLOC_* constants, kmalloc_type()), mm/slab_common.c
(kmalloc_info[], size_index[] / kmalloc_size_index[], setup_kmalloc_cache_index_table(),
create_kmalloc_caches(), new_kmalloc_cache(), create_boot_cache(), kmalloc_slab()).
"""

from __future__ import annotations

from dataclasses import dataclass

from kmodlab.model.errors import ModelError
from kmodlab.model.pages import get_order
from kmodlab.model.params import KernelParams
from kmodlab.model.slab import (
    SlabFlag,
    SlabGeometry,
    SlabLayout,
    calculate_alignment,
    calculate_sizes,
    slab_geometry,
)

# mm/slab_common.c:size_index[24] (6.12: kmalloc_size_index[]), indexed by (bytes - 1) / 8.
SIZE_INDEX = (3, 4, 5, 5, 6, 6, 6, 6, 1, 1, 1, 1, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2, 2, 2)

TYPE_PREFIX = {"normal": "kmalloc-", "reclaim": "kmalloc-rcl-", "cgroup": "kmalloc-cg-",
               "dma": "dma-kmalloc-"}
TYPE_FLAGS = {"normal": SlabFlag.NONE, "reclaim": SlabFlag.RECLAIM_ACCOUNT,
              "cgroup": SlabFlag.ACCOUNT, "dma": SlabFlag.CACHE_DMA}


def kmalloc_info_size(index: int) -> int:
    """mm/slab_common.c:kmalloc_info[]: 0 -> 0, 1 -> 96, 2 -> 192, i -> 1 << i."""
    return {0: 0, 1: 96, 2: 192}.get(index, 1 << index)


def short_size(size: int) -> str:
    """The size part of a kmalloc cache name: 96, 192, 1k, 8k, 1M."""
    if size >= 1 << 20:
        return f"{size >> 20}M"
    if size >= 1024:
        return f"{size >> 10}k"
    return str(size)


def kmalloc_index_of_size(size: int) -> int:
    """include/linux/slab.h:__kmalloc_index() for an exact class size."""
    if size == 96:
        return 1
    if size == 192:
        return 2
    return (size - 1).bit_length()


def size_index_table(p: KernelParams) -> tuple[int, ...]:
    """size_index[] after mm/slab_common.c:setup_kmalloc_cache_index_table(): entries below
    KMALLOC_MIN_SIZE point at KMALLOC_SHIFT_LOW; MIN_SIZE >= 64 sends 72..96 to 128;
    MIN_SIZE >= 128 sends 136..192 to 256."""
    table = list(SIZE_INDEX)
    for i in range(8, p.kmalloc_min_size, 8):
        elem = (i - 1) // 8
        if elem >= len(table):
            break
        table[elem] = p.kmalloc_shift_low
    if p.kmalloc_min_size >= 64:
        for i in range(72, 97, 8):
            table[(i - 1) // 8] = 7
    if p.kmalloc_min_size >= 128:
        for i in range(136, 193, 8):
            table[(i - 1) // 8] = 8
    return tuple(table)


def kmalloc_index(p: KernelParams, size: int) -> int:
    """mm/slab_common.c:kmalloc_slab() index: size_index[(size-1)/8] up to 192, else
    fls(size-1).  Only for 1..KMALLOC_MAX_CACHE_SIZE."""
    if not 1 <= size <= p.kmalloc_max_cache_size:
        raise ModelError(f"kmalloc_slab() serves 1..{p.kmalloc_max_cache_size}, not {size}")
    if size <= 192:
        return size_index_table(p)[(size - 1) // 8]
    return (size - 1).bit_length()


def created_indexes(p: KernelParams) -> tuple[int, ...]:
    """mm/slab_common.c:create_kmalloc_caches(): KMALLOC_SHIFT_LOW..HIGH, plus 96 (index 1)
    when KMALLOC_MIN_SIZE <= 32 and 192 (index 2) when KMALLOC_MIN_SIZE <= 64."""
    out = list(range(p.kmalloc_shift_low, p.kmalloc_shift_high + 1))
    if p.kmalloc_min_size <= 32:
        out.append(1)
    if p.kmalloc_min_size <= 64:
        out.append(2)
    return tuple(sorted(out, key=kmalloc_info_size))


def kmalloc_types(p: KernelParams) -> tuple[str, ...]:
    """include/linux/slab.h:enum kmalloc_cache_type as built by this config."""
    types = ["normal", "reclaim"]
    if p.zone_dma:
        types.append("dma")
    if p.memcg_kmalloc:
        types.append("cgroup")
    return tuple(types)


@dataclass(frozen=True)
class KmallocCache:
    """One kmalloc cache: its name, slot layout and slab geometry."""

    name: str
    type: str
    index: int
    layout: SlabLayout
    geometry: SlabGeometry
    flags: SlabFlag

    @property
    def object_size(self) -> int:
        return self.layout.object_size

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def align(self) -> int:
        return self.layout.align


def kmalloc_cache_align(p: KernelParams, size: int) -> int:
    """mm/slab_common.c:create_boot_cache(): start from ARCH_KMALLOC_MINALIGN; 6.1 aligns
    power-of-two sizes to themselves, 6.12 to the largest power of two dividing the size."""
    align = p.arch_kmalloc_minalign
    if p.kmalloc_cache_align == "power_of_two":
        if size & (size - 1) == 0:
            align = max(align, size)
    else:
        align = max(align, size & -size)
    return align


def new_kmalloc_cache(p: KernelParams, index: int, ktype: str) -> KmallocCache:
    """The cache created for ``index`` of ``ktype`` (6.12: after rounding the size up to
    __kmalloc_minalign(), which may make it the cache of a larger index)."""
    size = kmalloc_info_size(index)
    if p.kmalloc_minalign > p.arch_kmalloc_minalign:
        size = -(-size // p.kmalloc_minalign) * p.kmalloc_minalign
        index = kmalloc_index_of_size(size)
    flags = TYPE_FLAGS[ktype] | SlabFlag.KMALLOC
    align = calculate_alignment(p, flags, kmalloc_cache_align(p, size), size)
    layout = calculate_sizes(p, size, align, flags)
    return KmallocCache(TYPE_PREFIX[ktype] + short_size(size), ktype, index, layout,
                        slab_geometry(p, layout.size), flags)


def kmalloc_caches(p: KernelParams) -> dict[str, KmallocCache]:
    """Every kmalloc cache the kernel creates at boot, by name (random copies not included)."""
    out: dict[str, KmallocCache] = {}
    for ktype in kmalloc_types(p):
        for index in created_indexes(p):
            cache = new_kmalloc_cache(p, index, ktype)
            out.setdefault(cache.name, cache)
    return out


def kmalloc_slab(p: KernelParams, size: int, ktype: str) -> KmallocCache:
    """mm/slab_common.c:kmalloc_slab(): the cache that serves ``size`` bytes of ``ktype``."""
    index = kmalloc_index(p, size)
    if index not in created_indexes(p):
        raise ModelError(f"kmalloc index {index} has no cache (internal inconsistency)")
    return new_kmalloc_cache(p, index, ktype)


def large_order(p: KernelParams, size: int) -> int:
    """Order of the page allocation behind kmalloc(size > KMALLOC_MAX_CACHE_SIZE)."""
    return get_order(size, p.page_shift)


def kmalloc_cache_name(p: KernelParams, size: int, ktype: str = "normal") -> str | None:
    """Name of the cache kmalloc(size) uses, None for size 0 (ZERO_SIZE_PTR) and for the page
    allocator path above KMALLOC_MAX_CACHE_SIZE."""
    if size == 0 or size > p.kmalloc_max_cache_size:
        return None
    return kmalloc_slab(p, size, ktype).name


def kmalloc_bytes(p: KernelParams, size: int) -> int:
    """Bytes kmalloc(size) really takes: the slot size, or whole pages above 8K."""
    if size == 0:
        return 0
    if size > p.kmalloc_max_cache_size:
        return p.page_size << large_order(p, size)
    return kmalloc_slab(p, size, "normal").size


SIZE_MAX = (1 << 64) - 1


def kmalloc_size_roundup(p: KernelParams, size: int) -> int:
    """mm/slab_common.c:kmalloc_size_roundup().

    6.1: 0 -> 0, SIZE_MAX -> SIZE_MAX, above KMALLOC_MAX_CACHE_SIZE whole pages (no upper
    limit, computed in unsigned long), else the cache's object_size.
    6.12: 1..KMALLOC_MAX_CACHE_SIZE -> object_size, up to KMALLOC_MAX_SIZE whole pages, anything
    else (0 and too large) is returned unchanged.
    """
    if p.kmalloc_roundup is None:
        raise ModelError(f"{p.series} has no kmalloc_size_roundup() (it arrived in 6.1, "
                         "mm/slab_common.c); ask ksize() of a kmalloc() instead")
    if not 0 <= size <= SIZE_MAX:
        raise ModelError(f"size {size} is not a size_t")
    if p.kmalloc_roundup == "pages_unbounded":
        if size in (0, SIZE_MAX):
            return size
        if size > p.kmalloc_max_cache_size:
            return (p.page_size << get_order(size, p.page_shift)) & SIZE_MAX
        return kmalloc_slab(p, size, "normal").object_size
    if 1 <= size <= p.kmalloc_max_cache_size:
        return kmalloc_slab(p, size, "normal").object_size
    if 1 <= size <= p.kmalloc_max_size:
        return p.page_size << get_order(size, p.page_shift)
    return size


@dataclass(frozen=True)
class KreallocStep:
    """krealloc(p, new_size) of an object whose ksize() is known."""

    moved: bool          # a new object was allocated and the data copied
    ksize: int           # ksize() of the object krealloc returns


def krealloc_step(p: KernelParams, old_ksize: int, new_size: int, ksize_of_new: int
                  ) -> KreallocStep:
    """mm/slab_common.c:__do_krealloc() (6.1 and 6.12): ``if (ks >= new_size) return p`` --
    the object stays while it still fits its slot (growing or shrinking); otherwise
    kmalloc(new_size) and copy."""
    if new_size <= old_ksize:
        return KreallocStep(False, old_ksize)
    return KreallocStep(True, ksize_of_new)
