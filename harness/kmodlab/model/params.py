"""The resolved numbers of one kernel: the table in ``tables.py`` combined with a .config.

Everything downstream takes a :class:`KernelParams` and never looks at arch or version again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kmodlab.errors import ConfigError
from kmodlab.model import tables
from kmodlab.model.errors import ModelError


def _on(kconfig: Mapping[str, str], name: str) -> bool:
    return kconfig.get(name) in ("y", "m")


def _int(kconfig: Mapping[str, str], name: str) -> int | None:
    value = kconfig.get(name)
    if value is None:
        return None
    try:
        return int(value.strip('"'), 0)
    except ValueError as exc:
        raise ConfigError(f"{name}={value} is not a number") from exc


def slab_debug_on_cmdline(boot: Sequence[str]) -> str | None:
    """The kernel parameter that puts SLUB debug flags on caches, if any: ``slub_debug=`` (or
    6.8's ``slab_debug=``) with no options (full debugging), or a block of ``;``-separated
    ``flags[,cache,...]`` whose flags are not just ``-`` ("none").  A block of only ``-``
    debugs nothing: it only turns the static key slub_debug_enabled on, as 5.10's series
    parameter does (mm/slub.c: setup_slub_debug(), parse_slub_debug_flags())."""
    for param in boot:
        name, eq, value = param.partition("=")
        if name not in ("slub_debug", "slab_debug"):
            continue
        blocks = [b for b in value.split(";") if b] if eq else []
        if not blocks or any(b.split(",", 1)[0] != "-" for b in blocks):
            return param
    return None


def series_of(version: tuple[int, int] | str) -> str:
    """``(6, 12)`` or ``"6.12"`` -> ``"6.12"``; only the series the model covers are accepted."""
    if isinstance(version, str):
        text = version
    else:
        text = f"{version[0]}.{version[1]}"
    parts = text.split(".")
    series = ".".join(parts[:2])
    if series not in tables.SERIES:
        raise ConfigError(f"the model covers kernel series {', '.join(tables.SERIES)}, "
                          f"not {text}; add the series to kmodlab/model/tables.py")
    return series


@dataclass(frozen=True)
class KernelParams:
    arch: str
    series: str
    ncpus: int
    cache_line_size: int
    page_shift: int
    max_page_order: int            # highest order the buddy allocator has (inclusive)
    max_order_name: str            # how the kernel spells it, for explanations
    arch_kmalloc_minalign: int
    arch_dma_minalign: int | None   # None: the kernel does not define it (5.10 x86)
    kmalloc_minalign: int          # runtime minimum alignment of kmalloc caches
    kmalloc_min_size: int
    kmalloc_shift_low: int
    kmalloc_shift_high: int
    kmalloc_shift_max: int
    kmalloc_cache_align: str
    kmalloc_roundup: str | None    # the variant; None: no kmalloc_size_roundup() (5.10)
    memcg_kmalloc: bool
    zone_dma: bool
    random_kmalloc: bool
    slab_merge: bool
    hardened_usercopy: bool
    calculate_order: str
    slub_max_order: int
    max_objs_per_page: int
    min_partial: int
    max_partial: int
    cpu_partial: bool
    cpu_partial_objects: tuple[int, int, int, int]   # by s->size: >= PAGE_SIZE, 1024, 256, else
    cpu_partial_in_slabs: bool     # limited in slabs (5.16+), else in free objects
    sheaves: bool                  # per-CPU sheaves instead of CPU slabs (7.0+)
    sheaf_capacity: tuple[tuple[int, int], ...]   # (s->size below, objects)
    slab_no_merge_exists: bool
    usersize_blocks_merge: bool
    freeptr_offset_arg: bool
    redzone_orig_size_freeptr: bool
    track_size: int
    orig_size_bytes: int
    costly_order: int
    pcp_max_order: int             # highest order with per-cpu lists (THP order aside)
    pcp_huge_order: int | None
    pageblock_order: int
    pcp_batch: int
    pcp_order0_scale: int
    zone_fallback: tuple[str, ...]
    highmem: bool                  # CONFIG_HIGHMEM: ZONE_HIGHMEM exists (32-bit)
    zone_dma32: bool               # CONFIG_ZONE_DMA32 (not on i386: __GFP_DMA32 means Normal)
    zone_dma_bits: int             # dma-direct's GFP_DMA limit (kernel/dma/direct.c)
    dma_cma_mbytes: int | None     # CONFIG_CMA_SIZE_MBYTES with CONFIG_DMA_CMA; None: no DMA CMA
    cma_alignment: int             # CONFIG_CMA_ALIGNMENT: the largest CMA alignment order
    vm_struct_size: int
    thread_size: int
    mempool_t_size: int
    devres_header_size: int
    devres_roundup: bool
    pcpu_min_alloc_size: int
    pcpu_min_unit_size: int
    percpu_module_reserve: int
    pcpu_empty_pop_pages_high: int
    pcpu_chunk_types: int          # chunk types pcpu_balance_workfn() keeps populated
    kfence_sampling: bool
    kasan_generic: bool            # per-object KASAN metadata and redzones, no cache merging
    kasan_alloc_meta_size: int
    kasan_free_meta_size: int
    kasan_small_free_meta: str     # "append" (6.1) or "top_up" (6.12)
    slub_debug_boot: bool          # slub_debug= on the command line (6.12's static key)
    pointer_size: int
    zero_size_ptr: int
    rule_kmalloc_slab: str
    rule_kmalloc_large: str

    @property
    def version(self) -> tuple[int, int]:
        major, minor = self.series.split(".")
        return int(major), int(minor)

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def nr_page_orders(self) -> int:
        return self.max_page_order + 1

    @property
    def kmalloc_max_cache_size(self) -> int:
        return 1 << self.kmalloc_shift_high

    @property
    def kmalloc_max_size(self) -> int:
        return 1 << self.kmalloc_shift_max

    @property
    def min_objects(self) -> int:
        """mm/slub.c:calculate_order(): 4 * (fls(nr_cpus) + 1) with slub_min_objects unset."""
        return 4 * (self.ncpus.bit_length() + 1)


def debian_kconfig(arch: str, series: str, flavour: str | None = None) -> dict[str, str]:
    """The options the model reads, as Debian ships them for ``flavour`` (cloud and generic
    alike when None)."""
    kc = dict(tables.DEBIAN_KCONFIG[(arch, series)])
    kc.update(tables.FLAVOUR_KCONFIG.get(flavour or "", {}))
    return {k: v for k, v in kc.items() if v}


def resolve(arch: str, version: tuple[int, int] | str, kconfig: Mapping[str, str] | None,
            ncpus: int = 1, cache_line_size: int = 64, *, slab_nomerge: bool | None = None,
            swiotlb: bool = True, kfence_sample_interval: int | None = None,
            slub_debug_boot: bool = False, flavour: str | None = None,
            boot: Sequence[str] = ()) -> KernelParams:
    """Combine the table with a kernel config (Debian's for ``flavour`` when ``kconfig`` is
    None) and the parameters the kernel boots with (``boot``)."""
    if arch not in tables.ARCHES:
        raise ConfigError(f"the model covers {', '.join(tables.ARCHES)}, not {arch!r}")
    series = series_of(version)
    if (arch, series) not in tables.DEBIAN_KCONFIG:
        covered = [s for a, s in tables.DEBIAN_KCONFIG if a == arch]
        raise ConfigError(f"the model covers {arch} on series {', '.join(covered)}, not "
                          f"{series}; add it to kmodlab/model/tables.py")
    if ncpus < 1:
        raise ConfigError(f"ncpus must be at least 1, not {ncpus}")
    if cache_line_size < 8 or cache_line_size & (cache_line_size - 1):
        raise ConfigError(f"cache_line_size must be a power of two >= 8, not {cache_line_size}")
    kc = debian_kconfig(arch, series, flavour) if kconfig is None else dict(kconfig)

    overrides = {name: (option, entry) for option, table in tables.KCONFIG_OVERRIDES.items()
                 if _on(kc, option) for name, entry in table.items()}

    def t(name: str):
        if name not in overrides:
            return tables.lookup(name, arch, series)
        option, entry = overrides[name]
        try:
            return entry.lookup(arch, series)
        except KeyError:
            raise ModelError(f"{option}=y changes {name} ({entry.source.split(':')[0]}), and the "
                             f"model has no value held against {arch} {series} with "
                             "it; it refuses rather than guess") from None

    debugging = slab_debug_on_cmdline(boot)
    if debugging:
        raise ModelError(f"the kernel boots with {debugging}: SLUB's debug flags (red zones, "
                         "owner tracking, poisoning) change the layout of the caches they reach "
                         "(mm/slub.c: kmem_cache_flags(), calculate_sizes()); the model does not "
                         "cover that and refuses rather than guess")
    if _on(kc, "CONFIG_SLAB") or _on(kc, "CONFIG_SLOB"):
        raise ModelError("the model covers SLUB kernels only (this config selects SLAB/SLOB)")
    for unsupported in ("CONFIG_SLUB_TINY", "CONFIG_SLUB_DEBUG_ON"):
        if _on(kc, unsupported):
            raise ModelError(f"{unsupported}=y changes every slab layout; the model does not "
                             "cover it (Debian does not set it)")
    # mm/kasan/generic.c:kasan_cache_create() is the layout the model follows; the tag-based
    # modes (mm/kasan/sw_tags.c, hw_tags.c) lay objects out differently
    kasan = _on(kc, "CONFIG_KASAN")
    if kasan and not _on(kc, "CONFIG_KASAN_GENERIC"):
        raise ModelError("CONFIG_KASAN=y without CONFIG_KASAN_GENERIC: the model covers generic "
                         "KASAN's slab layout only (kmodlab's debug-memory kernels use it)")

    for option, why in tables.UNCOVERED_KCONFIG.items():
        if _on(kc, option):
            raise ModelError(f"{option}=y: {why}; the model refuses rather than guess")
    # CONFIG_PAGE_SHIFT (every arch, 6.9+: arch/Kconfig PAGE_SHIFT) or 6.1's arm64-only
    # CONFIG_ARM64_PAGE_SHIFT; a 16K arm64 .config that only had the former was read as 4K.
    page_shift = (_int(kc, "CONFIG_PAGE_SHIFT") or _int(kc, "CONFIG_ARM64_PAGE_SHIFT")
                  or t("PAGE_SHIFT"))
    if series not in tables.COVERED_PAGE_SHIFTS.get(page_shift, ()):
        held = [f"{1 << shift} on {', '.join(ss)}"
                for shift, ss in tables.COVERED_PAGE_SHIFTS.items()]
        raise ModelError(f"PAGE_SIZE {1 << page_shift} (PAGE_SHIFT {page_shift}) on {series}: "
                         f"the model was held against page sizes {'; '.join(held)} only (slab "
                         "orders, KMALLOC_MAX_CACHE_SIZE and the vmalloc guard all scale with "
                         "it); it refuses rather than answer for a kernel it was not held against")
    # arch/arm64/Kconfig spelled it FORCE_MAX_ZONEORDER until 6.1 (5.10 arm64: 11)
    forced = _int(kc, "CONFIG_ARCH_FORCE_MAX_ORDER")
    if forced is None:
        forced = _int(kc, "CONFIG_FORCE_MAX_ZONEORDER")
    max_order = forced if forced is not None else t("MAX_ORDER_DEFAULT")
    if t("MAX_ORDER_EXCLUSIVE"):
        max_page_order, order_name = max_order - 1, f"MAX_ORDER={max_order}"
    else:
        max_page_order, order_name = max_order, f"MAX_PAGE_ORDER={max_order}"

    arch_kmalloc_minalign = t("ARCH_KMALLOC_MINALIGN")
    # include/linux/slab.h: KMALLOC_MIN_SIZE = ARCH_KMALLOC_MINALIGN when it exceeds 8
    if arch_kmalloc_minalign > 8:
        kmalloc_min_size = arch_kmalloc_minalign
        shift_low = arch_kmalloc_minalign.bit_length() - 1
    else:
        kmalloc_min_size, shift_low = 8, 3
    runtime_minalign = arch_kmalloc_minalign
    if t("KMALLOC_RUNTIME_MINALIGN"):
        # mm/slab_common.c:__kmalloc_minalign()
        dma_align = t("DMA_CACHE_ALIGNMENT") or cache_line_size
        if _on(kc, "CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC") and swiotlb:
            dma_align = arch_kmalloc_minalign
        runtime_minalign = max(dma_align, 8)

    merge_default = _on(kc, "CONFIG_SLAB_MERGE_DEFAULT")
    thp = _on(kc, "CONFIG_TRANSPARENT_HUGEPAGE")
    kfence_interval = (kfence_sample_interval if kfence_sample_interval is not None
                       else _int(kc, "CONFIG_KFENCE_SAMPLE_INTERVAL") or 0)
    node_size = t("DEVRES_NODE_SIZE")
    data_align = (arch_kmalloc_minalign if t("DEVRES_DATA_ALIGN") == "ARCH_KMALLOC_MINALIGN"
                  else t("ARCH_DMA_MINALIGN"))
    return KernelParams(
        arch=arch, series=series, ncpus=ncpus, cache_line_size=cache_line_size,
        page_shift=page_shift, max_page_order=max_page_order, max_order_name=order_name,
        arch_kmalloc_minalign=arch_kmalloc_minalign, arch_dma_minalign=t("ARCH_DMA_MINALIGN"),
        kmalloc_minalign=runtime_minalign, kmalloc_min_size=kmalloc_min_size,
        kmalloc_shift_low=shift_low, kmalloc_shift_high=page_shift + 1,
        kmalloc_shift_max=min(max_page_order + page_shift, 25),
        kmalloc_cache_align=t("KMALLOC_CACHE_ALIGN"), kmalloc_roundup=t("KMALLOC_SIZE_ROUNDUP"),
        memcg_kmalloc=t("MEMCG_KMALLOC_SYMBOL") is not None and _on(kc, t("MEMCG_KMALLOC_SYMBOL")),
        zone_dma=_on(kc, "CONFIG_ZONE_DMA"),
        zone_dma_bits=t("ZONE_DMA_BITS"),
        dma_cma_mbytes=(_int(kc, "CONFIG_CMA_SIZE_MBYTES") or 0) if _on(kc, "CONFIG_DMA_CMA")
        else None,
        cma_alignment=_int(kc, "CONFIG_CMA_ALIGNMENT") or 8,
        random_kmalloc=_on(kc, "CONFIG_RANDOM_KMALLOC_CACHES"),
        slab_merge=(not slab_nomerge) if slab_nomerge is not None else merge_default,
        hardened_usercopy=_on(kc, "CONFIG_HARDENED_USERCOPY"),
        calculate_order=t("CALCULATE_ORDER"), slub_max_order=t("SLUB_MAX_ORDER"),
        max_objs_per_page=t("MAX_OBJS_PER_PAGE"), min_partial=t("MIN_PARTIAL"),
        max_partial=t("MAX_PARTIAL"),
        cpu_partial=_on(kc, "CONFIG_SLUB_CPU_PARTIAL") and not t("SLUB_SHEAVES"),
        cpu_partial_objects=t("CPU_PARTIAL_OBJECTS"),
        cpu_partial_in_slabs=t("CPU_PARTIAL_IN_SLABS"),
        sheaves=t("SLUB_SHEAVES") and not _on(kc, "CONFIG_SLUB_TINY"),
        sheaf_capacity=t("SHEAF_CAPACITY"),
        slab_no_merge_exists=t("SLAB_NO_MERGE_EXISTS"),
        usersize_blocks_merge=(t("USERSIZE_BLOCKS_MERGE") == "always"
                               or _on(kc, "CONFIG_HARDENED_USERCOPY")),
        freeptr_offset_arg=t("FREEPTR_OFFSET_ARG"),
        redzone_orig_size_freeptr=t("REDZONE_ORIG_SIZE_FREEPTR"), track_size=t("TRACK_SIZE"),
        orig_size_bytes=t("ORIG_SIZE_BYTES"), costly_order=t("PAGE_ALLOC_COSTLY_ORDER"),
        pcp_max_order=t("PAGE_ALLOC_COSTLY_ORDER") if t("PCP_HIGH_ORDERS") else 0,
        pcp_huge_order=(page_shift - 3) if thp and t("PCP_HIGH_ORDERS") else None,
        pageblock_order=min(page_shift - 3, max_page_order)
        if _on(kc, "CONFIG_HUGETLB_PAGE") or (thp and t("PAGEBLOCK_ORDER_FROM_THP"))
        else max_page_order,
        pcp_batch=t("PCP_BATCH"),
        pcp_order0_scale=(_int(kc, "CONFIG_PCP_BATCH_SCALE_MAX") or 5)
        if t("PCP_REFILL_SCALES_ORDER0") else 0,
        zone_fallback=t("ZONE_FALLBACK"), vm_struct_size=t("VM_STRUCT_SIZE"),
        highmem=_on(kc, "CONFIG_HIGHMEM"), zone_dma32=_on(kc, "CONFIG_ZONE_DMA32"),
        thread_size=t("THREAD_SIZE") << (t("KASAN_STACK_SHIFT") if kasan else 0),
        mempool_t_size=t("MEMPOOL_T_SIZE"),
        devres_header_size=(node_size + data_align - 1) // data_align * data_align,
        devres_roundup=t("DEVRES_ROUNDUP"), pcpu_min_alloc_size=t("PCPU_MIN_ALLOC_SIZE"),
        pcpu_min_unit_size=t("PCPU_MIN_UNIT_SIZE"),
        percpu_module_reserve=t("PERCPU_MODULE_RESERVE"),
        pcpu_empty_pop_pages_high=t("PCPU_EMPTY_POP_PAGES_HIGH"),
        pcpu_chunk_types=2 if t("PCPU_MEMCG_CHUNK_TYPE") and _on(kc, "CONFIG_MEMCG_KMEM") else 1,
        kfence_sampling=_on(kc, "CONFIG_KFENCE") and kfence_interval > 0,
        kasan_generic=kasan, kasan_alloc_meta_size=t("KASAN_ALLOC_META_SIZE"),
        kasan_free_meta_size=t("KASAN_FREE_META_SIZE"),
        kasan_small_free_meta=t("KASAN_SMALL_OBJECT_FREE_META"), slub_debug_boot=slub_debug_boot,
        pointer_size=t("SIZEOF_POINTER"), zero_size_ptr=t("ZERO_SIZE_PTR"),
        rule_kmalloc_slab=t("KMALLOC_SLAB_RULE"), rule_kmalloc_large=t("KMALLOC_LARGE_RULE"),
    )
