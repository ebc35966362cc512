"""Every per-arch and per-version constant of the model, each next to where it comes from.

This is the one table the model reads; code elsewhere never tests ``arch ==`` or ``version ==``.
An entry's ``values`` are looked up most-specific first: ``(arch, series)``, then ``arch``, then
``series``, then ``"*"``.  Sources: the Debian trees linux-source-6.1 (6.1.192) and
linux-source-6.12 (6.12.117) as summarised in shared/KERNEL-FACTS.md, re-read upstream where
cited.  Facts checked on booted kernels say so ("verified").

``DEBIAN_KCONFIG`` holds the config values the model needs, as Debian ships them, for use when
no real .config is given (KERNEL-FACTS section 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ARCHES = ("x86_64", "arm64")
SERIES = ("6.1", "6.12")


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
        {"6.1": 11, "6.12": 10},
        "include/linux/mmzone.h: 6.1 MAX_ORDER 11 (exclusive); 6.12 MAX_PAGE_ORDER 10 "
        "(inclusive); both = CONFIG_ARCH_FORCE_MAX_ORDER when set (arm64: 11 on 6.1, 10 on 6.12)"),
    "MAX_ORDER_EXCLUSIVE": Entry(
        {"6.1": True, "6.12": False},
        "include/linux/mmzone.h: MAX_ORDER was exclusive until 6.4; 6.8 renamed the inclusive "
        "one MAX_PAGE_ORDER (KERNEL-FACTS appendix B)"),
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
        {"6.1": False, "6.12": True},
        "6.12 mm/slab_common.c:new_kmalloc_cache() aligns sizes to __kmalloc_minalign() and "
        "aliases smaller caches; 6.1 has no such step"),
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
        "where the size -> cache lookup lives in each version (KERNEL-FACTS 1.3)"),
    "KMALLOC_LARGE_RULE": Entry(
        {"6.1": "mm/slab_common.c:__kmalloc_large_node()",
         "6.12": "mm/slub.c:___kmalloc_large_node()"},
        "the kmalloc path above KMALLOC_MAX_CACHE_SIZE (KERNEL-FACTS 1.5)"),
    "MEMCG_KMALLOC_SYMBOL": Entry(
        {"6.1": "CONFIG_MEMCG_KMEM", "6.12": "CONFIG_MEMCG"},
        "include/linux/slab.h:kmalloc_type(): KMALLOC_CGROUP exists with MEMCG_KMEM (6.1) / "
        "MEMCG (6.12)"),
    "KMALLOC_NORMAL_NO_MERGE": Entry(
        {"6.1": "refcount -1", "6.12": "SLAB_NO_MERGE"},
        "mm/slab_common.c:new_kmalloc_cache(): KMALLOC_NORMAL is made unmergeable with memcg"),
    # ------------------------------------------------------------------ SLUB
    "CALCULATE_ORDER": Entry(
        {"6.1": "min_objects_countdown", "6.12": "min_order_fractions"},
        "mm/slub.c:calculate_order()/calc_slab_order(): 6.1 loops min_objects down to 2 over "
        "fractions 16,8,4; the 6.7 rework starts at get_order(min_objects*size) and tries "
        "fractions 16,8,4,2"),
    "SLUB_MAX_ORDER": Entry({"*": 3}, "mm/slub.c:slub_max_order = PAGE_ALLOC_COSTLY_ORDER"),
    "MAX_OBJS_PER_PAGE": Entry({"*": 32767}, "mm/slub.c:MAX_OBJS_PER_PAGE"),
    "MIN_PARTIAL": Entry({"*": 5}, "mm/slub.c:MIN_PARTIAL"),
    "MAX_PARTIAL": Entry({"*": 10}, "mm/slub.c:MAX_PARTIAL"),
    "SLAB_NO_MERGE_EXISTS": Entry(
        {"6.1": False, "6.12": True}, "include/linux/slab.h:SLAB_NO_MERGE (added in 6.5)"),
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
        "sizeof(unsigned int) (6.1 and 6.12 source; KERNEL-FACTS says 8 on 6.12, not observable "
        "after the 8-byte alignment)"),
    "THREAD_SIZE": Entry(
        {"*": 16384},
        "arch/x86/include/asm/page_64_types.h: PAGE_SIZE << THREAD_SIZE_ORDER (2, no KASAN); "
        "arch/arm64/include/asm/memory.h: 1 << MIN_THREAD_SHIFT (14, no KASAN); with "
        "VMAP_STACK every task stack is a vmalloc area of this size (+ guard page)"),
    # ------------------------------------------------------------------ structures
    "SIZEOF_POINTER": Entry({"*": 8}, "64-bit: sizeof(void *)"),
    "VM_STRUCT_SIZE": Entry(
        {"6.1": 64, "6.12": 72},
        "include/linux/vmalloc.h:struct vm_struct: 64 B in 6.1; 6.12.117 adds requested_size "
        "(72 B) (KERNEL-FACTS 7)"),
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


# Debian's values of the options the model reads (KERNEL-FACTS section 0).  Options absent here
# are "not set".
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
DEBIAN_KCONFIG_SOURCE = "Debian linux-config-6.1 / linux-config-6.12 (KERNEL-FACTS section 0)"
