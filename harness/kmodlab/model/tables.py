"""Every per-arch and per-version constant of the model, each next to where it comes from.

This is the one table the model reads; code elsewhere never tests ``arch ==`` or ``version ==``.
An entry's ``values`` are looked up most-specific first: ``(arch, series)``, then ``arch``, then
``series``, then ``"*"``.  Sources: the Debian trees linux-source-6.1 (6.1.192) and
linux-source-6.12 (6.12.117), re-read upstream where cited; docs/kernel-notes.md explains each
fact with its kernel source.  Facts checked on booted kernels say so ("verified").

``SINCE`` holds the upstream release in which a behaviour appeared, for questions about any
kernel (a custom one included): ask :func:`since`, never compare versions elsewhere.  Table
entries that only differ across such a boundary are derived from it.

``DEBIAN_KCONFIG`` holds the config values the model needs, as Debian ships them, for use when
no real .config is given (docs/kernel-notes.md, "Kernels covered").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ARCHES = ("x86_64", "arm64")
SERIES = ("6.1", "6.12")


@dataclass(frozen=True)
class Since:
    """A behaviour that exists from upstream release ``release`` (major, minor) on."""

    release: tuple[int, int]
    source: str


SINCE: dict[str, Since] = {
    "MAX_ORDER_INCLUSIVE": Since(
        (6, 4),
        "include/linux/mmzone.h:MAX_ORDER: exclusive (orders 0..MAX_ORDER-1) until commit "
        "23baf831a32c \"mm, treewide: redefine MAX_ORDER sanely\" (6.4) made it inclusive; "
        "CONFIG_ARCH_FORCE_MAX_ORDER changed meaning with it"),
    "MAX_PAGE_ORDER": Since(
        (6, 8),
        "include/linux/mmzone.h: commit 5e0a760b4441 \"mm, treewide: rename MAX_ORDER to "
        "MAX_PAGE_ORDER\" (6.8), with NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1 (fd37721803c6)"),
    "SLAB_NO_MERGE": Since(
        (6, 5),
        "include/linux/slab.h:SLAB_NO_MERGE, in SLAB_NEVER_MERGE (mm/slab_common.c): commit "
        "d0bf7d5759c1 \"mm/slab: introduce kmem_cache flag SLAB_NO_MERGE\" (6.5)"),
    "KMALLOC_MINALIGN_DECOUPLED": Since(
        (6, 5),
        "include/linux/slab.h:ARCH_KMALLOC_MINALIGN no longer follows ARCH_DMA_MINALIGN, and "
        "mm/slab_common.c:__kmalloc_minalign() picks the runtime minimum: commit 4ab5f8ec7d71 "
        "\"mm/slab: decouple ARCH_KMALLOC_MINALIGN from ARCH_DMA_MINALIGN\" and its series (6.5)"),
    "RANDOM_KMALLOC_CACHES": Since(
        (6, 6),
        "mm/Kconfig:RANDOM_KMALLOC_CACHES, include/linux/slab.h:kmalloc_type(): commit "
        "3c6152940584 \"Randomized slab caches for kmalloc()\" (6.6)"),
    "CALCULATE_ORDER_FRACTIONS": Since(
        (6, 7),
        "mm/slub.c:calculate_order()/calc_slab_order(): Vlastimil Babka's series \"mm/slub: "
        "remove min_objects loop from calculate_order()\" and \"attempt to find layouts up to "
        "1/2 waste\", branch slab/for-6.7/orders-cleanup (6.7)"),
}


def since(name: str, version: tuple[int, ...]) -> bool:
    """True if ``SINCE[name]`` exists in a kernel of ``version`` ((major, minor), more ignored)."""
    return tuple(version[:2]) >= SINCE[name].release


def series_version(series: str) -> tuple[int, int]:
    """``"6.12"`` -> ``(6, 12)``."""
    major, minor = series.split(".")[:2]
    return int(major), int(minor)


def _by_series(name: str, present: Any, absent: Any) -> dict[Any, Any]:
    """Table values for each covered series from the ``SINCE[name]`` boundary."""
    return {s: present if since(name, series_version(s)) else absent for s in SERIES}


@dataclass(frozen=True)
class Entry:
    values: dict[Any, Any]
    source: str

    def lookup(self, arch: str, series: str) -> Any:
        for key in ((arch, series), arch, series, "*"):
            if key in self.values:
                return self.values[key]
        raise KeyError(f"no value for {arch} {series}")


TABLE: dict[str, Entry] = {
    # ------------------------------------------------------------------ pages
    "PAGE_SHIFT": Entry(
        {"*": 12},
        "arch/x86/include/asm/page_types.h:PAGE_SHIFT; arch/arm64/include/asm/page-def.h:"
        "PAGE_SHIFT = CONFIG_ARM64_PAGE_SHIFT (12 with ARM64_4K_PAGES, Debian generic flavour)"),
    "MAX_ORDER_DEFAULT": Entry(
        _by_series("MAX_ORDER_INCLUSIVE", 10, 11),
        "include/linux/mmzone.h: 6.1 MAX_ORDER 11 (exclusive); 6.12 MAX_PAGE_ORDER 10 "
        "(inclusive); both = CONFIG_ARCH_FORCE_MAX_ORDER when set (arm64: 11 on 6.1, 10 on 6.12)"),
    "MAX_ORDER_EXCLUSIVE": Entry(
        _by_series("MAX_ORDER_INCLUSIVE", False, True),
        SINCE["MAX_ORDER_INCLUSIVE"].source + "; " + SINCE["MAX_PAGE_ORDER"].source),
    "PAGE_ALLOC_COSTLY_ORDER": Entry({"*": 3}, "include/linux/mmzone.h:PAGE_ALLOC_COSTLY_ORDER"),
    "PCP_HUGE_ORDER": Entry(
        {"*": 9},
        "mm/page_alloc.c:pcp_allowed_order(): 6.1 pageblock_order, 6.12 HPAGE_PMD_ORDER; "
        "= 9 on x86_64 and arm64-4K with TRANSPARENT_HUGEPAGE"),
    "PAGEBLOCK_ORDER_FROM_THP": Entry(
        {"6.1": False, "6.12": True},
        "include/linux/pageblock-flags.h: pageblock_order = min(HUGETLB_PAGE_ORDER, max order) "
        "with HUGETLB_PAGE (PMD order, PAGE_SHIFT - 3 on 64-bit); without it 6.12 uses "
        "HPAGE_PMD_ORDER under TRANSPARENT_HUGEPAGE, 6.1 the largest order"),
    "PCP_BATCH": Entry(
        {"*": 63},
        "mm/page_alloc.c:zone_batchsize(): 63 for zones of ~688 MiB (176128 pages) or more "
        "(verified 6.1 DMA32 batch 63 at 1 GiB); smaller zones get less -- 31 in the 512 MiB "
        "guests (verified in /proc/zoneinfo), 1 for x86's 16 MiB DMA zone.  Only a default: "
        "Model.zone_pcp_batch() computes a zone's batch from its managed pages"),
    "PCP_REFILL_SCALES_ORDER0": Entry(
        {"6.1": False, "6.12": True},
        "6.1 mm/page_alloc.c:__rmqueue_pcplist(): max(batch >> order, 2) blocks; 6.12 "
        "nr_pcp_alloc(): order-0 batch << alloc_factor (up to CONFIG_PCP_BATCH_SCALE_MAX)"),
    "ZONE_FALLBACK": Entry(
        {"*": ("Normal", "DMA32", "DMA")},
        "mm/page_alloc.c zonelists: a GFP_KERNEL request starts at the highest zone "
        "(gfp_zone()) and falls back downwards; x86 1 GiB has DMA+DMA32, arm64 1 GiB only DMA "
        "(verified)"),
    # ------------------------------------------------------------------ kmalloc
    "ARCH_KMALLOC_MINALIGN": Entry(
        {"x86_64": 8, ("arm64", "6.1"): 128, ("arm64", "6.12"): 8},
        "include/linux/slab.h: defaults to __alignof__(unsigned long long)=8; arm64 6.1 "
        "arch/arm64/include/asm/cache.h sets ARCH_DMA_MINALIGN 128 and slab.h uses it; 6.5+ "
        "decouples them (verified KMALLOC_MIN_SIZE=128 on arm64 6.1)"),
    "ARCH_DMA_MINALIGN": Entry(
        {"x86_64": 8, "arm64": 128},
        "arch/arm64/include/asm/cache.h:ARCH_DMA_MINALIGN (128); include/linux/cache.h "
        "default __alignof__(unsigned long long) on x86"),
    "DMA_CACHE_ALIGNMENT": Entry(
        {"x86_64": 1, "arm64": None},
        "include/linux/dma-mapping.h:dma_get_cache_alignment(): 1 without ARCH_HAS_DMA_MINALIGN "
        "(x86); arm64 returns cache_line_size() (None here = the model's cache_line_size)"),
    "KMALLOC_RUNTIME_MINALIGN": Entry(
        _by_series("KMALLOC_MINALIGN_DECOUPLED", True, False),
        "6.12 mm/slab_common.c:new_kmalloc_cache() aligns sizes to __kmalloc_minalign() and "
        "aliases smaller caches; 6.1 has no such step.  "
        + SINCE["KMALLOC_MINALIGN_DECOUPLED"].source),
    "KMALLOC_CACHE_ALIGN": Entry(
        {"6.1": "power_of_two", "6.12": "largest_pow2_divisor"},
        "mm/slab_common.c:create_boot_cache(): 6.1 aligns power-of-two sizes naturally; 6.12 "
        "aligns to 1 << (ffs(size) - 1) (verified kmalloc-192 align 8 on 6.1, 64 on 6.12)"),
    "KMALLOC_SIZE_ROUNDUP": Entry(
        {"6.1": "pages_unbounded", "6.12": "bounded_by_max_size"},
        "mm/slab_common.c:kmalloc_size_roundup(): 6.1 returns 0 for 0 and pages above 8K "
        "without an upper limit; 6.12 returns size unchanged for 0 and above KMALLOC_MAX_SIZE"),
    "KMALLOC_SLAB_RULE": Entry(
        {"6.1": "mm/slab_common.c:kmalloc_slab() + size_index[]",
         "6.12": "mm/slab.h:kmalloc_slab() + kmalloc_size_index[]"},
        "where the size -> cache lookup lives in each version: 6.1 kmalloc_slab() WARNs and "
        "returns NULL above KMALLOC_MAX_CACHE_SIZE, 6.12's inline leaves that to the caller"),
    "KMALLOC_LARGE_RULE": Entry(
        {"6.1": "mm/slab_common.c:__kmalloc_large_node()",
         "6.12": "mm/slub.c:___kmalloc_large_node()"},
        "the kmalloc path above KMALLOC_MAX_CACHE_SIZE: alloc_pages(flags | __GFP_COMP, "
        "get_order(size)), counted in NR_SLAB_UNRECLAIMABLE_B but not in /proc/slabinfo"),
    "MEMCG_KMALLOC_SYMBOL": Entry(
        {"6.1": "CONFIG_MEMCG_KMEM", "6.12": "CONFIG_MEMCG"},
        "include/linux/slab.h:kmalloc_type(): KMALLOC_CGROUP exists with MEMCG_KMEM (6.1) / "
        "MEMCG (6.12)"),
    "KMALLOC_NORMAL_NO_MERGE": Entry(
        {"6.1": "refcount -1", "6.12": "SLAB_NO_MERGE"},
        "mm/slab_common.c:new_kmalloc_cache(): KMALLOC_NORMAL is made unmergeable with memcg"),
    # ------------------------------------------------------------------ SLUB
    "CALCULATE_ORDER": Entry(
        _by_series("CALCULATE_ORDER_FRACTIONS", "min_order_fractions", "min_objects_countdown"),
        "mm/slub.c:calculate_order()/calc_slab_order(): 6.1 loops min_objects down to 2 over "
        "fractions 16,8,4; the 6.7 rework starts at get_order(min_objects*size) and tries "
        "fractions 16,8,4,2.  " + SINCE["CALCULATE_ORDER_FRACTIONS"].source),
    "SLUB_MAX_ORDER": Entry({"*": 3}, "mm/slub.c:slub_max_order = PAGE_ALLOC_COSTLY_ORDER"),
    "MAX_OBJS_PER_PAGE": Entry({"*": 32767}, "mm/slub.c:MAX_OBJS_PER_PAGE"),
    "MIN_PARTIAL": Entry({"*": 5}, "mm/slub.c:MIN_PARTIAL"),
    "MAX_PARTIAL": Entry({"*": 10}, "mm/slub.c:MAX_PARTIAL"),
    "SLAB_NO_MERGE_EXISTS": Entry(
        _by_series("SLAB_NO_MERGE", True, False), SINCE["SLAB_NO_MERGE"].source),
    "USERSIZE_BLOCKS_MERGE": Entry(
        {"6.1": "always", "6.12": "hardened_usercopy"},
        "mm/slab_common.c:slab_unmergeable(): 6.1 any usersize; 6.12 only under "
        "CONFIG_HARDENED_USERCOPY"),
    "FREEPTR_OFFSET_ARG": Entry(
        {"6.1": False, "6.12": True},
        "6.12 mm/slub.c:calculate_sizes(): SLAB_TYPESAFE_BY_RCU keeps the free pointer inside "
        "when kmem_cache_args.use_freeptr_offset is set"),
    "REDZONE_ORIG_SIZE_FREEPTR": Entry(
        {"6.1": False, "6.12": True},
        "6.12 mm/slub.c:calculate_sizes(): a red-zoned kmalloc cache that tracks orig_size "
        "(slub_debug_orig_size()) moves the free pointer outside the object"),
    "TRACK_SIZE": Entry(
        {"*": 32},
        "mm/slub.c:struct track {addr; handle; cpu; pid; when} with STACKDEPOT = 32 bytes"),
    "ORIG_SIZE_BYTES": Entry(
        {"*": 4},
        "mm/slub.c:calculate_sizes(): SLAB_STORE_USER on kmalloc caches adds "
        "sizeof(unsigned int) for orig_size (6.1 and 6.12 source); whether 4 or 8, the "
        "ALIGN(size, 8) that follows hides it, so it is not observable"),
    # ------------------------------------------------------------------ generic KASAN
    "KASAN_ALLOC_META_SIZE": Entry(
        {"*": 16},
        "mm/kasan/kasan.h: struct kasan_alloc_meta {struct kasan_track alloc_track (u32 pid, "
        "depot_stack_handle_t stack); depot_stack_handle_t aux_stack[2]} = 16 bytes without "
        "CONFIG_KASAN_EXTRA_INFO; mm/kasan/generic.c:kasan_cache_create() appends it to every "
        "object"),
    "KASAN_FREE_META_SIZE": Entry(
        {"*": 16},
        "mm/kasan/kasan.h: struct kasan_free_meta {struct qlist_node quarantine_link; struct "
        "kasan_track free_track} = 16 bytes; kept inside a freed object unless it has a ctor, "
        "is SLAB_TYPESAFE_BY_RCU or is smaller than the struct"),
    "KASAN_SMALL_OBJECT_FREE_META": Entry(
        {"6.1": "append", "6.12": "top_up"},
        "mm/kasan/generic.c:kasan_cache_create(): for an object smaller than struct "
        "kasan_free_meta, 6.1 appends the whole struct after the alloc meta; 6.12 (without "
        "slub_debug) only grows the slot by what the object lacks and stores the free meta at "
        "offset 0 across the object and its redzone"),
    "KASAN_STACK_SHIFT": Entry(
        {"*": 1},
        "arch/x86/include/asm/page_64_types.h: THREAD_SIZE_ORDER = 2 + KASAN_STACK_ORDER (1 "
        "with KASAN); arch/arm64/include/asm/memory.h: MIN_THREAD_SHIFT = 14 + "
        "KASAN_THREAD_SHIFT (1 with generic KASAN): KASAN doubles every task stack"),
    "THREAD_SIZE": Entry(
        {"*": 16384},
        "arch/x86/include/asm/page_64_types.h: PAGE_SIZE << THREAD_SIZE_ORDER (2, no KASAN); "
        "arch/arm64/include/asm/memory.h: 1 << MIN_THREAD_SHIFT (14, no KASAN); with "
        "VMAP_STACK every task stack is a vmalloc area of this size (+ guard page)"),
    # ------------------------------------------------------------------ structures
    "SIZEOF_POINTER": Entry({"*": 8}, "64-bit: sizeof(void *)"),
    "VM_STRUCT_SIZE": Entry(
        {"6.1": 64, "6.12": 72},
        "include/linux/vmalloc.h:struct vm_struct: 64 B in 6.1; 6.12.117 has requested_size "
        "(72 B, kmalloc-96) from a0309faf1cb0 \"mm: vmalloc: support more granular vrealloc() "
        "sizing\", backported to 6.12.y in May 2025 (earlier 6.12.y: 64 B)"),
    "MEMPOOL_T_SIZE": Entry(
        {"*": 72},
        "include/linux/mempool.h:mempool_t = 72 B on 64-bit without spinlock debugging "
        "(verified ksize(pool) 96, 128 on arm64 6.1)"),
    "DEVRES_NODE_SIZE": Entry(
        {"*": 40}, "drivers/base/devres.c:struct devres_node {entry; release; name; size} = 40 B"),
    "DEVRES_DATA_ALIGN": Entry(
        {"6.1": "ARCH_KMALLOC_MINALIGN", "6.12": "ARCH_DMA_MINALIGN"},
        "drivers/base/devres.c:struct devres { node; u8 data[] __aligned(X) }: X is "
        "ARCH_KMALLOC_MINALIGN in 6.1, ARCH_DMA_MINALIGN in 6.12"),
    "DEVRES_ROUNDUP": Entry(
        {"6.1": False, "6.12": True},
        "drivers/base/devres.c:alloc_dr(): 6.12 passes kmalloc_size_roundup(tot) to kmalloc"),
    # ------------------------------------------------------------------ percpu
    "PCPU_MIN_ALLOC_SIZE": Entry({"*": 4}, "mm/percpu-internal.h:PCPU_MIN_ALLOC_SIZE"),
    "PCPU_MIN_UNIT_SIZE": Entry({"*": 32768}, "include/linux/percpu.h:PCPU_MIN_UNIT_SIZE"),
    "PERCPU_MODULE_RESERVE": Entry({"*": 8192}, "include/linux/percpu.h:PERCPU_MODULE_RESERVE"),
    # ------------------------------------------------------------------ misc
    "ZERO_SIZE_PTR": Entry({"*": 16}, "include/linux/slab.h:ZERO_SIZE_PTR ((void *)16)"),
}


def lookup(name: str, arch: str, series: str) -> Any:
    return TABLE[name].lookup(arch, series)


def source(name: str) -> str:
    return TABLE[name].source


# Debian's values of the options the model reads (Debian's linux-config-6.1 / linux-config-6.12
# packages; docs/kernel-notes.md, "Kernels covered").  Options absent here are "not set".
_COMMON = {
    "CONFIG_SLUB": "y",
    "CONFIG_SLAB_MERGE_DEFAULT": "y",
    "CONFIG_SLUB_DEBUG": "y",
    "CONFIG_SLUB_CPU_PARTIAL": "y",
    "CONFIG_SLAB_FREELIST_RANDOM": "y",
    "CONFIG_SLAB_FREELIST_HARDENED": "y",
    "CONFIG_HARDENED_USERCOPY": "y",
    "CONFIG_MEMCG": "y",
    "CONFIG_ZONE_DMA": "y",
    "CONFIG_ZONE_DMA32": "y",
    "CONFIG_INIT_ON_ALLOC_DEFAULT_ON": "y",
    "CONFIG_NUMA": "y",
    "CONFIG_TRANSPARENT_HUGEPAGE": "y",
    "CONFIG_HUGETLB_PAGE": "y",
    "CONFIG_STACKDEPOT": "y",
}
DEBIAN_KCONFIG: dict[tuple[str, str], dict[str, str]] = {
    ("x86_64", "6.1"): {**_COMMON, "CONFIG_MEMCG_KMEM": "y"},
    ("x86_64", "6.12"): {**_COMMON, "CONFIG_SLAB_BUCKETS": "y", "CONFIG_KFENCE": "y",
                         "CONFIG_KFENCE_SAMPLE_INTERVAL": "0", "CONFIG_PCP_BATCH_SCALE_MAX": "5"},
    ("arm64", "6.1"): {**_COMMON, "CONFIG_MEMCG_KMEM": "y", "CONFIG_ARM64_4K_PAGES": "y",
                       "CONFIG_ARM64_PAGE_SHIFT": "12", "CONFIG_ARCH_FORCE_MAX_ORDER": "11"},
    ("arm64", "6.12"): {**_COMMON, "CONFIG_SLAB_BUCKETS": "y", "CONFIG_KFENCE": "y",
                        "CONFIG_KFENCE_SAMPLE_INTERVAL": "0", "CONFIG_PCP_BATCH_SCALE_MAX": "5",
                        "CONFIG_ARM64_4K_PAGES": "y", "CONFIG_ARM64_PAGE_SHIFT": "12",
                        "CONFIG_ARCH_FORCE_MAX_ORDER": "10",
                        "CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC": "y"},
}
DEBIAN_KCONFIG_SOURCE = ("Debian linux-config-6.1 (6.1.192-2) / linux-config-6.12 "
                         "(6.12.117-1~deb12u1), amd64 and arm64 config files")
