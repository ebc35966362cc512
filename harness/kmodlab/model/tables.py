"""Every per-arch and per-version constant of the model, each next to where it comes from.

This is the one table the model reads; code elsewhere never tests ``arch ==`` or ``version ==``.
An entry's ``values`` are looked up most-specific first: ``(arch, series)``, then ``arch``, then
``series``, then ``"*"``.  Sources: the Debian trees linux-source-5.10 (5.10.262), linux-source-6.1 (6.1.192),
linux-source-6.12 (6.12.117) and linux-source-7.2 (7.2.13), re-read upstream where cited; docs/kernel-notes.md explains each
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

ARCHES = ("x86_64", "arm64", "i386")
SERIES = ("5.10", "6.1", "6.12", "7.2")


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
    "SLUB_SHEAVES": Since(
        (7, 0),
        "mm/slub.c: per-CPU array caches (\"sheaves\", struct slub_percpu_sheaves) replace the "
        "CPU slab and the per-CPU partial lists (SLUB_CPU_PARTIAL is gone from mm/Kconfig); "
        "calculate_sheaf_capacity() gives every cache without debug flags a sheaf; opt-in "
        "sheaves came in 6.18, all caches in 7.0 (7.0) (read in linux-source-7.2, mm/slub.c "
        "calculate_sheaf_capacity(), __pcs_replace_empty_main())"),
    "PCP_HIGH_ORDER": Since(
        (5, 13),
        "mm/page_alloc.c:pcp_allowed_order(): per-cpu lists for orders up to "
        "PAGE_ALLOC_COSTLY_ORDER and the THP order, commit 44042b449872 \"mm/page_alloc: allow "
        "high-order pages to be stored on the per-cpu lists\" (5.13); 5.10's rmqueue() sends "
        "only order 0 to rmqueue_pcplist()"),
    "KMALLOC_CGROUP": Since(
        (5, 14),
        "include/linux/slab.h:enum kmalloc_cache_type KMALLOC_CGROUP (kmalloc-cg-<n>): commit "
        "494c1dfe855e \"mm: memcg/slab: create a new set of kmalloc-cg-<n> caches\" (5.14); "
        "5.10's kmalloc_type() sends __GFP_ACCOUNT to the normal caches"),
    "CPU_PARTIAL_SLABS": Since(
        (5, 16),
        "mm/slub.c:slub_set_cpu_partial(): the per-CPU partial list is limited in slabs "
        "(cpu_partial_slabs) from 6/24/52/120 objects, commit b47291ef02b0 \"mm, slub: change "
        "percpu partial accounting from objects to pages\" (5.16); 5.10's set_cpu_partial() "
        "limits free objects to 2/6/13/30"),
    "SLUB_TRACK_STACKDEPOT": Since(
        (5, 17),
        "mm/slub.c:struct track holds a depot_stack_handle_t, commit 788691464c29 \"mm/slub: "
        "use stackdepot to save stack trace in objects\" (5.17); 5.10 stores "
        "addrs[TRACK_ADDRS_COUNT = 16] inline"),
    "KMALLOC_SIZE_ROUNDUP": Since(
        (6, 1),
        "mm/slab_common.c:kmalloc_size_roundup(): commit 05a940656e1e \"slab: Introduce "
        "kmalloc_size_roundup()\" (6.1); 5.10 has no such function"),
    "SLUB_ORIG_SIZE": Since(
        (6, 1),
        "mm/slub.c:calculate_sizes(): kmalloc caches with SLAB_STORE_USER keep orig_size, "
        "commit 6edf2576a6cc \"mm/slub: enable debugging memory wasting of kmalloc\" (6.1)"),
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


_I386_LOWMEM = 0x36FFE000         # LOWMEM_LIMIT's value, also ZONE_LIMITS' end of Normal

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
    "PCP_HIGH_ORDERS": Entry(
        _by_series("PCP_HIGH_ORDER", True, False), SINCE["PCP_HIGH_ORDER"].source),
    "PCP_HUGE_ORDER": Entry(
        {"*": 9},
        "mm/page_alloc.c:pcp_allowed_order(): 6.1 pageblock_order, 6.12 HPAGE_PMD_ORDER; "
        "= 9 on x86_64 and arm64-4K with TRANSPARENT_HUGEPAGE"),
    "PAGEBLOCK_ORDER_FROM_THP": Entry(
        {"5.10": False, "6.1": False, "6.12": True, "7.2": True},
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
        {"5.10": False, "6.1": False, "6.12": True, "7.2": True},
        "6.1 mm/page_alloc.c:__rmqueue_pcplist(): max(batch >> order, 2) blocks; 6.12 "
        "nr_pcp_alloc(): order-0 batch << alloc_factor (up to CONFIG_PCP_BATCH_SCALE_MAX)"),
    "ZONE_FALLBACK": Entry(
        {"*": ("Normal", "DMA32", "DMA"), "i386": ("HighMem", "Normal", "DMA")},
        "mm/page_alloc.c zonelists: a GFP_KERNEL request starts at the highest zone "
        "(gfp_zone()) and falls back downwards; x86 1 GiB has DMA+DMA32, arm64 1 GiB only DMA "
        "(verified); i386 (include/linux/mmzone.h, CONFIG_HIGHMEM, no ZONE_DMA32): DMA "
        "(16 MiB), Normal (lowmem), HighMem above it (verified on 6.1.0-57-686-pae)"),
    "ZONE_LIMITS": Entry(
        {"x86_64": (("DMA", 16 << 20), ("DMA32", 4 << 30)), "arm64": (("DMA", 4 << 30),),
         # PAE addresses 64 GiB; Normal ends at LOWMEM_LIMIT (below)
         "i386": (("DMA", 16 << 20), ("Normal", _I386_LOWMEM), ("HighMem", 64 << 30))},
        "arch/x86/mm/init.c:zone_sizes_init(): ZONE_DMA to MAX_DMA_PFN (16 MiB), ZONE_DMA32 to "
        "MAX_DMA32_PFN (4 GiB); arch/arm64/mm/init.c:zone_sizes_init(): ZONE_DMA to the 32-bit "
        "DMA limit (zone_dma_bits 32 on QEMU's virt machine), so ZONE_DMA32 is empty; i386: "
        "arch/x86/mm/init.c too, ZONE_NORMAL to max_low_pfn (LOWMEM_LIMIT), ZONE_HIGHMEM above; "
        "the physical end of each zone"),
    "RAM_BASE": Entry(
        {"x86_64": 0, "i386": 0, "arm64": 1 << 30},
        "where QEMU puts the guest's RAM: hw/i386/pc.c from 0 (up to 3 GiB below the PCI hole "
        "when RAM is 3.5 GiB or more), hw/arm/virt.c from 1 GiB (VIRT_MEM)"),
    "LOWMEM_LIMIT": Entry(
        {"i386": _I386_LOWMEM},
        "arch/x86/mm/init_32.c:find_low_pfn_range(): lowmem ends at MAXMEM "
        "(arch/x86/include/asm/pgtable_32_areas.h: VMALLOC_END - PAGE_OFFSET - "
        "__VMALLOC_RESERVE, which depends on the fixmap and so on NR_CPUS); verified on "
        "6.1.0-57-686-pae and 5.10.0-32-686-pae with 1536 MiB: \"879MB LOWMEM available\", "
        "HighMem zone from 0x36ffe000"),
    "ZONE_DMA_BITS": Entry(
        {"x86_64": 24, "i386": 24, "arm64": 32},
        "kernel/dma/direct.c: zone_dma_bits defaults to 24 (x86's 16 MiB ZONE_DMA); arm64 "
        "arch/arm64/mm/init.c:zone_sizes_init() sets min3(32, the device tree's and ACPI's "
        "DMA limits): 32 on QEMU's virt machine, whose PCI host has no dma-ranges limit (6.12+: "
        "zone_dma_limit = DMA_BIT_MASK(32), the same); dma_direct_optimal_gfp_mask() turns a "
        "device mask at or below it into GFP_DMA, at or below 32 bits into GFP_DMA32"),
    # ------------------------------------------------------------------ kmalloc
    "ARCH_KMALLOC_MINALIGN": Entry(
        {"x86_64": 8, "i386": 8, ("arm64", "5.10"): 128, ("arm64", "6.1"): 128,
         ("arm64", "6.12"): 8, ("arm64", "7.2"): 8},
        "include/linux/slab.h: defaults to __alignof__(unsigned long long)=8; arm64 6.1 "
        "arch/arm64/include/asm/cache.h sets ARCH_DMA_MINALIGN 128 and slab.h uses it; 6.5+ "
        "decouples them (verified KMALLOC_MIN_SIZE=128 on arm64 6.1); i386: 8 as well "
        "(__alignof__(unsigned long long) is 8 with GCC -m32)"),
    "ARCH_DMA_MINALIGN": Entry(
        {"x86_64": 8, "i386": 8, "arm64": 128, ("x86_64", "5.10"): None, ("i386", "5.10"): None},
        "arch/arm64/include/asm/cache.h:ARCH_DMA_MINALIGN (128); include/linux/cache.h "
        "default __alignof__(unsigned long long) on x86 (64- and 32-bit); 5.10's "
        "include/linux/cache.h has no default, so x86 does not define it (None)"),
    "DMA_CACHE_ALIGNMENT": Entry(
        {"x86_64": 1, "i386": 1, "arm64": None},
        "include/linux/dma-mapping.h:dma_get_cache_alignment(): 1 without ARCH_HAS_DMA_MINALIGN "
        "(x86); arm64 returns cache_line_size() (None here = the model's cache_line_size)"),
    "KMALLOC_RUNTIME_MINALIGN": Entry(
        _by_series("KMALLOC_MINALIGN_DECOUPLED", True, False),
        "6.12 mm/slab_common.c:new_kmalloc_cache() aligns sizes to __kmalloc_minalign() and "
        "aliases smaller caches; 6.1 has no such step.  "
        + SINCE["KMALLOC_MINALIGN_DECOUPLED"].source),
    "KMALLOC_CACHE_ALIGN": Entry(
        {"5.10": "power_of_two", "6.1": "power_of_two", "6.12": "largest_pow2_divisor",
         "7.2": "largest_pow2_divisor"},
        "mm/slab_common.c:create_boot_cache(): 6.1 aligns power-of-two sizes naturally; 6.12 "
        "and 7.2 align to 1 << (ffs(size) - 1) (verified kmalloc-192 align 8 on 6.1, 64 on "
        "6.12)"),
    "KMALLOC_SIZE_ROUNDUP": Entry(
        {"5.10": None, "6.1": "pages_unbounded", "6.12": "bounded_by_max_size",
         "7.2": "bounded_by_max_size"},
        SINCE["KMALLOC_SIZE_ROUNDUP"].source + "; 6.1 returns 0 for 0 and pages above 8K "
        "without an upper limit; 6.12 and 7.2 return size unchanged for 0 and above "
        "KMALLOC_MAX_SIZE"),
    "KMALLOC_SLAB_RULE": Entry(
        {"5.10": "mm/slab_common.c:kmalloc_slab() + size_index[]",
         "6.1": "mm/slab_common.c:kmalloc_slab() + size_index[]",
         "6.12": "mm/slab.h:kmalloc_slab() + kmalloc_size_index[]",
         "7.2": "mm/slab.h:kmalloc_slab() + kmalloc_size_index[]"},
        "where the size -> cache lookup lives in each version: 6.1 kmalloc_slab() WARNs and "
        "returns NULL above KMALLOC_MAX_CACHE_SIZE, 6.12's inline leaves that to the caller"),
    "KMALLOC_LARGE_RULE": Entry(
        {"5.10": "mm/slab_common.c:kmalloc_order() (kmalloc_node: mm/slub.c:"
                 "kmalloc_large_node())",
         "6.1": "mm/slab_common.c:__kmalloc_large_node()",
         "6.12": "mm/slub.c:___kmalloc_large_node()",
         "7.2": "mm/slub.c:___kmalloc_large_node()"},
        "the kmalloc path above KMALLOC_MAX_CACHE_SIZE: alloc_pages(flags | __GFP_COMP, "
        "get_order(size)), counted in NR_SLAB_UNRECLAIMABLE_B but not in /proc/slabinfo"),
    "MEMCG_KMALLOC_SYMBOL": Entry(
        {"5.10": None, "6.1": "CONFIG_MEMCG_KMEM", "6.12": "CONFIG_MEMCG", "7.2": "CONFIG_MEMCG"},
        "include/linux/slab.h:kmalloc_type(): KMALLOC_CGROUP exists with MEMCG_KMEM (6.1) / "
        "MEMCG (6.12, 7.2); not at all in 5.10 (None): " + SINCE["KMALLOC_CGROUP"].source),
    "KMALLOC_NORMAL_NO_MERGE": Entry(
        {"5.10": "usersize", "6.1": "refcount -1", "6.12": "SLAB_NO_MERGE",
         "7.2": "SLAB_NO_MERGE"},
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
        {"5.10": "always", "6.1": "always", "6.12": "hardened_usercopy",
         "7.2": "hardened_usercopy"},
        "mm/slab_common.c:slab_unmergeable(): 6.1 any usersize; 6.12 only under "
        "CONFIG_HARDENED_USERCOPY"),
    "FREEPTR_OFFSET_ARG": Entry(
        {"5.10": False, "6.1": False, "6.12": True, "7.2": True},
        "6.12 mm/slub.c:calculate_sizes(): SLAB_TYPESAFE_BY_RCU keeps the free pointer inside "
        "when kmem_cache_args.use_freeptr_offset is set"),
    "REDZONE_ORIG_SIZE_FREEPTR": Entry(
        {"5.10": False, "6.1": False, "6.12": True, "7.2": True},
        "6.12 mm/slub.c:calculate_sizes(): a red-zoned kmalloc cache that tracks orig_size "
        "(slub_debug_orig_size()) moves the free pointer outside the object"),
    "SLUB_SHEAVES": Entry(
        {s: since("SLUB_SHEAVES", series_version(s)) for s in SERIES},
        SINCE["SLUB_SHEAVES"].source),
    "SHEAF_CAPACITY": Entry(
        {"*": ((256, 60), (1024, 28), (4096, 12), (1 << 62, 4))},
        "7.2 mm/slub.c:calculate_sheaf_capacity(): base 60/26/12/4 objects for s->size below "
        "256, 1024, PAGE_SIZE and above, grown until struct slab_sheaf (32 B + 8 B a slot) "
        "fills its kmalloc bucket: 60 (512 B), 28 (256 B), 12 (128 B), 4 (64 B)"),
    "TRACK_SIZE": Entry(
        {"*": 32, "i386": 20, "5.10": 152, ("i386", "5.10"): 80},
        "mm/slub.c:struct track {addr; handle; cpu; pid; when} with STACKDEPOT = 32 bytes on "
        "64-bit, 20 on i386 (4-byte addr and unsigned long when); 5.10's struct track {addr; "
        "addrs[16] (CONFIG_STACKTRACE); cpu; pid; when} = 152 bytes on 64-bit, 80 on i386.  "
        + SINCE["SLUB_TRACK_STACKDEPOT"].source),
    "CPU_PARTIAL_OBJECTS": Entry(
        {"*": (6, 24, 52, 120), "5.10": (2, 6, 13, 30)},
        "mm/slub.c:set_cpu_partial(): objects for s->size >= PAGE_SIZE, >= 1024, >= 256, "
        "smaller; 5.10 counts free objects on the per-CPU partial list against them, later "
        "kernels turn them into slabs.  " + SINCE["CPU_PARTIAL_SLABS"].source),
    "CPU_PARTIAL_IN_SLABS": Entry(
        _by_series("CPU_PARTIAL_SLABS", True, False), SINCE["CPU_PARTIAL_SLABS"].source),
    "ORIG_SIZE_BYTES": Entry(
        {"*": 4, "5.10": 0},
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
        {"5.10": "append", "6.1": "append", "6.12": "top_up", "7.2": "top_up"},
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
        {"*": 16384, "i386": 8192},
        "arch/x86/include/asm/page_64_types.h: PAGE_SIZE << THREAD_SIZE_ORDER (2, no KASAN); "
        "arch/arm64/include/asm/memory.h: 1 << MIN_THREAD_SHIFT (14, no KASAN); with "
        "VMAP_STACK every task stack is a vmalloc area of this size (+ guard page); "
        "arch/x86/include/asm/page_32_types.h: THREAD_SIZE_ORDER 1 on i386 (no VMAP_STACK)"),
    # ------------------------------------------------------------------ structures
    "SIZEOF_POINTER": Entry({"*": 8, "i386": 4}, "sizeof(void *): 8 on 64-bit, 4 on i386"),
    "VM_STRUCT_SIZE": Entry(
        {"5.10": 64, "6.1": 64, "6.12": 72, "7.2": 80, "i386": 36},
        "include/linux/vmalloc.h:struct vm_struct: 64 B in 6.1; 6.12.117 has requested_size "
        "(72 B, kmalloc-96) from a0309faf1cb0 \"mm: vmalloc: support more granular vrealloc() "
        "sizing\", backported to 6.12.y in May 2025 (earlier 6.12.y: 64 B); 7.2.13: 80 B "
        "(nr_pages is an unsigned long), still kmalloc-96; i386 6.1: 36 B (4-byte pointers, "
        "no page_order: no HAVE_ARCH_HUGE_VMALLOC)"),
    "MEMPOOL_T_SIZE": Entry(
        {"*": 72, "i386": 40},
        "include/linux/mempool.h:mempool_t = 72 B on 64-bit without spinlock debugging "
        "(verified ksize(pool) 96, 128 on arm64 6.1); 40 B on i386 (4-byte pointers and "
        "spinlock, 12-byte wait_queue_head_t)"),
    "DEVRES_NODE_SIZE": Entry(
        {"5.10": 24, "6.1": 40, "6.12": 40, "7.2": 56, "i386": 20, ("i386", "5.10"): 12},
        "offsetof(struct devres, data) before its alignment: drivers/base/devres.c:struct "
        "devres_node {entry; release; name; size} = 40 B in 6.1 and 6.12; in 7.2.13 "
        "drivers/base/base.h:struct devres_node {entry; release; free_node; name; size} = 48 B "
        "and struct devres adds its own dr_release_t release before data[]: 56 B; i386 6.1: "
        "20 B (list_head 8 + three 4-byte fields); 5.10: name and size only under "
        "CONFIG_DEBUG_DEVRES, which Debian does not set: 24 B (12 on i386)"),
    "DEVRES_DATA_ALIGN": Entry(
        {"5.10": "ARCH_KMALLOC_MINALIGN", "6.1": "ARCH_KMALLOC_MINALIGN",
         "6.12": "ARCH_DMA_MINALIGN",
         "7.2": "ARCH_DMA_MINALIGN"},
        "drivers/base/devres.c:struct devres { node; u8 data[] __aligned(X) }: X is "
        "ARCH_KMALLOC_MINALIGN in 6.1, ARCH_DMA_MINALIGN in 6.12"),
    "DEVRES_ROUNDUP": Entry(
        {"5.10": False, "6.1": False, "6.12": True, "7.2": True},
        "drivers/base/devres.c:alloc_dr(): 6.12 passes kmalloc_size_roundup(tot) to kmalloc"),
    # ------------------------------------------------------------------ percpu
    "PCPU_MIN_ALLOC_SIZE": Entry({"*": 4}, "mm/percpu-internal.h:PCPU_MIN_ALLOC_SIZE"),
    "PCPU_MIN_UNIT_SIZE": Entry({"*": 32768}, "include/linux/percpu.h:PCPU_MIN_UNIT_SIZE"),
    "PERCPU_MODULE_RESERVE": Entry({"*": 8192}, "include/linux/percpu.h:PERCPU_MODULE_RESERVE"),
    "PCPU_EMPTY_POP_PAGES_HIGH": Entry(
        {"*": 4},
        "mm/percpu.c:PCPU_EMPTY_POP_PAGES_HIGH: pcpu_balance_workfn() populates up to this many "
        "empty pages per unit for atomic allocations"),
    "PCPU_MEMCG_CHUNK_TYPE": Entry(
        {"5.10": True, "*": False},
        "mm/percpu-internal.h:enum pcpu_chunk_type: 5.10 keeps accounted (MEMCG_KMEM) "
        "allocations in chunks of their own, PCPU_CHUNK_MEMCG, and pcpu_balance_workfn() "
        "balances each type (a second set of empty pages, a chunk created for it if none); 6.1 "
        "has one chunk type"),
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
# Contiguous memory for DMA (kernel/dma/contiguous.c): Debian's arm64 configs reserve 64 MiB
# at boot; amd64 has none before 7.2, and 7.2's amd64 config has it with size 0 (cma= turns it
# on).  i386 has no CMA.
_DEBIAN_CMA = {"CONFIG_CMA": "y", "CONFIG_DMA_CMA": "y", "CONFIG_CMA_SIZE_SEL_MBYTES": "y",
              "CONFIG_CMA_SIZE_MBYTES": "64", "CONFIG_CMA_ALIGNMENT": "8"}
DEBIAN_KCONFIG: dict[tuple[str, str], dict[str, str]] = {
    # 5.10 (Debian linux-config-5.10 5.10.262-1 amd64/i386, 5.10.223-1 arm64): SLUB does not use
    # the stack depot (STACKDEPOT not selected); arm64 forces the max order under its old name
    ("x86_64", "5.10"): {**_COMMON, "CONFIG_STACKDEPOT": "", "CONFIG_MEMCG_KMEM": "y"},
    ("arm64", "5.10"): {**_COMMON, "CONFIG_STACKDEPOT": "", "CONFIG_MEMCG_KMEM": "y",
                        "CONFIG_ARM64_4K_PAGES": "y", "CONFIG_ARM64_PAGE_SHIFT": "12",
                        "CONFIG_FORCE_MAX_ZONEORDER": "11", **_DEBIAN_CMA},
    ("i386", "5.10"): {**_COMMON, "CONFIG_STACKDEPOT": "", "CONFIG_MEMCG_KMEM": "y",
                       "CONFIG_ZONE_DMA32": "", "CONFIG_NUMA": "", "CONFIG_HIGHMEM": "y",
                       "CONFIG_HIGHMEM64G": "y", "CONFIG_X86_PAE": "y", "CONFIG_VMSPLIT_3G": "y"},
    ("x86_64", "6.1"): {**_COMMON, "CONFIG_MEMCG_KMEM": "y"},
    ("x86_64", "6.12"): {**_COMMON, "CONFIG_SLAB_BUCKETS": "y", "CONFIG_KFENCE": "y",
                         "CONFIG_KFENCE_SAMPLE_INTERVAL": "0", "CONFIG_PCP_BATCH_SCALE_MAX": "5"},
    ("arm64", "6.1"): {**_COMMON, **_DEBIAN_CMA, "CONFIG_MEMCG_KMEM": "y",
                       "CONFIG_ARM64_4K_PAGES": "y",
                       "CONFIG_ARM64_PAGE_SHIFT": "12", "CONFIG_ARCH_FORCE_MAX_ORDER": "11"},
    ("arm64", "6.12"): {**_COMMON, **_DEBIAN_CMA, "CONFIG_SLAB_BUCKETS": "y", "CONFIG_KFENCE": "y",
                        "CONFIG_KFENCE_SAMPLE_INTERVAL": "0", "CONFIG_PCP_BATCH_SCALE_MAX": "5",
                        "CONFIG_ARM64_4K_PAGES": "y", "CONFIG_ARM64_PAGE_SHIFT": "12",
                        "CONFIG_ARCH_FORCE_MAX_ORDER": "10",
                        "CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC": "y"},
    # i386 686-pae (Debian linux-config-6.1 6.1.192-3 i386): PAE + HIGHMEM64G, VMSPLIT_3G, no
    # ZONE_DMA32, no NUMA, no KFENCE
    ("i386", "6.1"): {**_COMMON, "CONFIG_MEMCG_KMEM": "y", "CONFIG_ZONE_DMA32": "",
                      "CONFIG_NUMA": "", "CONFIG_HIGHMEM": "y", "CONFIG_HIGHMEM64G": "y",
                      "CONFIG_X86_PAE": "y", "CONFIG_VMSPLIT_3G": "y"},
    # 7.2: no CONFIG_SLUB_CPU_PARTIAL (sheaves); CONFIG_PAGE_SHIFT on every arch
    ("x86_64", "7.2"): {**_COMMON, **_DEBIAN_CMA, "CONFIG_CMA_SIZE_MBYTES": "0",
                        "CONFIG_SLUB_CPU_PARTIAL": "", "CONFIG_SLAB_BUCKETS": "y",
                        "CONFIG_KFENCE": "y", "CONFIG_KFENCE_SAMPLE_INTERVAL": "0",
                        "CONFIG_PCP_BATCH_SCALE_MAX": "5", "CONFIG_SLAB_OBJ_EXT": "y",
                        "CONFIG_PAGE_SHIFT": "12", "CONFIG_PAGE_BLOCK_MAX_ORDER": "10"},
    ("arm64", "7.2"): {**_COMMON, **_DEBIAN_CMA, "CONFIG_SLUB_CPU_PARTIAL": "", "CONFIG_SLAB_BUCKETS": "y",
                       "CONFIG_KFENCE": "y", "CONFIG_KFENCE_SAMPLE_INTERVAL": "0",
                       "CONFIG_PCP_BATCH_SCALE_MAX": "5", "CONFIG_SLAB_OBJ_EXT": "y",
                       "CONFIG_PAGE_SHIFT": "12", "CONFIG_PAGE_BLOCK_MAX_ORDER": "10",
                       "CONFIG_ARM64_4K_PAGES": "y", "CONFIG_ARCH_FORCE_MAX_ORDER": "10",
                       "CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC": "y"},
}
# What a Debian flavour changes in the options above (debian/config/<arch>/defines.toml and the
# featureset configs of Debian's linux source, 6.12).  Flavours absent here change nothing the
# model reads (cloud, generic).  The model refuses what these select until it covers them
# (kmodlab.model.params.resolve).
FLAVOUR_KCONFIG: dict[str, dict[str, str]] = {
    # debian/config/arm64/config.arm64-16k: CONFIG_ARM64_16K_PAGES=y, so
    # arch/arm64/Kconfig:ARM64_PAGE_SHIFT = 14
    # and ARCH_FORCE_MAX_ORDER "11" if ARM64_16K_PAGES (6.12 and 7.2.13's config: 11)
    "16k": {"CONFIG_ARM64_4K_PAGES": "", "CONFIG_ARM64_16K_PAGES": "y",
            "CONFIG_ARM64_PAGE_SHIFT": "14", "CONFIG_PAGE_SHIFT": "14",
            "CONFIG_ARCH_FORCE_MAX_ORDER": "11"},
    # debian/config/featureset-rt/config: CONFIG_PREEMPT_RT=y
    "rt": {"CONFIG_PREEMPT_RT": "y"},
}

# Configurations the model does not cover yet: option -> why, said when it is refused.
UNCOVERED_KCONFIG: dict[str, str] = {}

# Table values an enabled kernel option replaces: option -> {table name: Entry}.  Where the
# option is on and an Entry has no value for the (arch, series), the model refuses by name:
# those kernels were not held against it.
KCONFIG_OVERRIDES: dict[str, dict[str, Entry]] = {
    "CONFIG_PREEMPT_RT": {
        "MEMPOOL_T_SIZE": Entry(
            {**{(arch, series): 120 for arch in ("x86_64", "arm64")
                for series in ("6.1", "6.12", "7.2")}, ("i386", "6.1"): 64,
             ("x86_64", "5.10"): 152, ("arm64", "5.10"): 152, ("i386", "5.10"): 80},
            "include/linux/spinlock_types.h: with PREEMPT_RT a spinlock_t is a struct "
            "rt_mutex_base (include/linux/rtmutex.h: raw_spinlock_t wait_lock, struct "
            "rb_root_cached waiters, struct task_struct *owner: 32 B on 64-bit), and mempool_t "
            "holds two, its own lock and wait_queue_head_t's: lock 32 + min_nr, curr_nr 8 + "
            "four pointers 32 + wait 48 = 120 B, kmalloc-128.  Measured 2026-12-05 with "
            "`kmodlab check --flavour rt` on x86_64 and arm64 6.1.0-57, 6.12.118+deb12 and "
            "7.2.13+deb14: 0 failures, the rest of the model unchanged.  i386 6.1 rt: 4-byte "
            "fields, rt_mutex_base 16 B, so 16 + 8 + 16 + wait 24 = 64 B, kmalloc-64 (the "
            "non-rt 40 B is kmalloc-64 too: the check cannot tell them apart; 0 failures on "
            "6.1.0-57-rt-686-pae).  5.10 rt (Debian's rt patch set, "
            "include/linux/spinlock_types_rt.h): spinlock_t is struct rt_mutex (wait_lock, "
            "waiters, owner, save_state: 40 B) + break_lock, 48 B, so mempool_t is 48 + 8 + 32 "
            "+ wait 64 = 152 B, kmalloc-192: 0 failures on 5.10.0-32-rt-amd64 and -arm64 "
            "(2026-12-06, with the series' slub_debug boot parameter, registry series.yaml); "
            "on i386 rt_mutex is 20 B, spinlock_t 24, so 24 + 8 + 16 + wait 32 = 80 B, "
            "kmalloc-96"),
    },
}
# PAGE_SHIFT -> the series whose kernels with that page size the model was held against.  Sizes
# that scale with the page (KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1, slab orders, the vmalloc guard,
# pcp batches) are computed from it; 16 KiB: Debian's arm64 16k flavour, `kmodlab check` with 0
# failures on 6.12.118+deb12-arm64-16k and 7.2.13+deb14-arm64-16k (2026-12-05).
COVERED_PAGE_SHIFTS: dict[int, tuple[str, ...]] = {12: SERIES, 14: ("6.12", "7.2")}

DEBIAN_KCONFIG_SOURCE = ("Debian linux-config-5.10 (5.10.262-1 amd64 and i386, 5.10.223-1 "
                         "arm64) / linux-config-6.1 (6.1.192-2) / linux-config-6.12 "
                         "(6.12.117-1~deb12u1), amd64 and arm64 config files; 7.2: the "
                         "config of linux-base-7.2.13+deb14-cloud-{amd64,arm64} (7.2.13-1)")


def covered() -> list[tuple[str, str]]:
    """Every (arch, series) the model covers, arch-major in ARCHES and SERIES order."""
    return [(a, s) for a in ARCHES for s in SERIES if (a, s) in DEBIAN_KCONFIG]
