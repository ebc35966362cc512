"""The reference model's front door: one object per kernel, methods named after kernel concepts.

Every method returns a :class:`Prediction` (value, exact or bounded, and the rule it follows).
The rules themselves live in the small modules next to this one; this class only binds them to
one kernel's parameters and says which rule produced each number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmodlab.model import devres, dma, gfp, kmalloc, mempool, pages, percpu, slab, vmalloc
from kmodlab.model.errors import ModelError
from kmodlab.model.params import KernelParams, resolve
from kmodlab.model.prediction import Prediction, bounded, exact
from kmodlab.model.slab import SlabFlag

if TYPE_CHECKING:
    from kmodlab.kernels.kernel import Kernel

R_ALIGN = "mm/slab_common.c:calculate_alignment()"
R_SIZES = "mm/slub.c:calculate_sizes()"
R_ORDER = "mm/slub.c:calculate_order() + calc_slab_order()"
R_MERGE = "mm/slab_common.c:find_mergeable() + slab_unmergeable()"
R_UNIQUE = "mm/slub.c:sysfs_slab_add() + create_unique_id()"
R_ROUNDUP = "mm/slab_common.c:kmalloc_size_roundup()"
R_GETORDER = "include/asm-generic/getorder.h:get_order()"
R_BUDDY = "mm/page_alloc.c:__rmqueue_smallest() + expand()"
R_MERGE_FREE = "mm/page_alloc.c:__free_one_page()"
R_PCP = "mm/page_alloc.c:pcp_allowed_order() + rmqueue_pcplist()"
R_VMALLOC = "mm/vmalloc.c:__get_vm_area_node() + __vmalloc_area_node()"
R_IOREMAP = ("arch/x86/mm/ioremap.c:__ioremap_caller(), arch/arm64/mm/ioremap.c (5.10-6.5; "
             "6.6+: mm/ioremap.c:generic_ioremap_prot()): phys page-aligned, size = "
             "PAGE_ALIGN(offset + size), get_vm_area_caller(VM_IOREMAP) -> "
             "mm/vmalloc.c:__get_vm_area_node(): align = 1 << clamp(get_count_order_long(size), "
             "PAGE_SHIFT, IOREMAP_MAX_ORDER), size += PAGE_SIZE (guard)")
R_DMA = ("kernel/dma/direct.c:__dma_direct_alloc_pages(): PAGE_ALIGN(size), "
         "dma_direct_optimal_gfp_mask(); kernel/dma/contiguous.c:dma_alloc_contiguous(): the "
         "default CMA area above PAGE_SIZE (cma_alloc_aligned(): size >> PAGE_SHIFT pages, "
         "aligned to min(get_order(size), CONFIG_CMA_ALIGNMENT)), else "
         "alloc_pages_node(get_order(size))")
R_MEMPOOL = "mm/mempool.c:mempool_create_node() + mempool_init_node()"
R_MEMPOOL_ALLOC = "mm/mempool.c:mempool_alloc() + mempool_free()"
R_PERCPU = "mm/percpu.c:pcpu_alloc()"
R_PERCPU_MEMINFO = "mm/percpu.c:pcpu_nr_pages() + pcpu_balance_workfn()"
R_DEVRES = "drivers/base/devres.c:alloc_dr() + struct devres"


@dataclass(frozen=True)
class Waste:
    """Internal fragmentation of one allocation: bytes allocated but not requested."""

    requested: int
    allocated: int

    @property
    def bytes(self) -> int:
        return self.allocated - self.requested

    @property
    def percent(self) -> float:
        """Share of the allocated bytes that were not requested."""
        return 100.0 * self.bytes / self.allocated if self.allocated else 0.0


@dataclass(frozen=True)
class KmemCacheInfo:
    """What kmem_cache_create() builds for these arguments (when it does not merge)."""

    layout: slab.SlabLayout
    geometry: slab.SlabGeometry
    ksize: int
    min_partial: int
    cpu_partial_slabs: int | None      # None before 5.16 (a limit in objects)
    unmergeable_reason: str | None
    sysfs_name: str | None         # ":A-0000104" for a mergeable cache; None = its own name

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def objects_per_slab(self) -> int:
        return self.geometry.objects

    @property
    def order(self) -> int:
        return self.geometry.order


@dataclass(frozen=True)
class MergeVerdict:
    """Whether kmem_cache_create() would reuse an existing cache, and which."""

    can_merge: bool                # find_mergeable() would look for a target at all
    target: str | None             # the existing cache it merges into (if candidates given)
    unique_id: str | None          # the sysfs id the class shares (":0000104")
    reason: str


@dataclass(frozen=True)
class SlabinfoCounts:
    """The /proc/slabinfo columns of one cache holding n live objects."""

    active_objs: int
    num_objs: int
    num_slabs: int


class Model:
    """Reference model of one kernel: ``Model("x86_64", (6, 12), kconfig, ncpus=2)``."""

    def __init__(self, arch: str, version: tuple[int, int] | str,
                 kconfig: Mapping[str, str] | None = None, ncpus: int = 1,
                 cache_line_size: int = 64, *, slab_nomerge: bool | None = None,
                 swiotlb: bool = True, kfence_sample_interval: int | None = None,
                 flavour: str | None = None, boot: Sequence[str] = ()) -> None:
        self.params: KernelParams = resolve(
            arch, version, kconfig, ncpus, cache_line_size, slab_nomerge=slab_nomerge,
            swiotlb=swiotlb, kfence_sample_interval=kfence_sample_interval, flavour=flavour,
            boot=boot)
        self.kconfig_given = kconfig is not None

    @classmethod
    def for_kernel(cls, kernel: Kernel, ncpus: int = 1, *, boot: Sequence[str] = (),
                   **kwargs: object) -> Model:
        """The model of a provisioned kernel, using its real .config and the parameters it
        boots with (``boot`` adds more, e.g. a lab's command line)."""
        return cls(kernel.arch, kernel.version, kernel.kconfig, ncpus,  # type: ignore[arg-type]
                   boot=(*kernel.boot_cmdline, *boot), **kwargs)

    @classmethod
    def from_params(cls, arch: str, version: tuple[int, int] | str,
                    kconfig: Mapping[str, str] | None = None, ncpus: int = 1,
                    **kwargs: object) -> Model:
        """The model from plain parameters; without ``kconfig`` Debian's config (of the
        ``flavour`` keyword, if given) is assumed."""
        return cls(arch, version, kconfig, ncpus, **kwargs)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        p = self.params
        cfg = "kconfig" if self.kconfig_given else "Debian defaults"
        return f"Model({p.arch} {p.series}, ncpus={p.ncpus}, {cfg})"

    @property
    def arch(self) -> str:
        return self.params.arch

    @property
    def version(self) -> tuple[int, int]:
        return self.params.version

    @property
    def ncpus(self) -> int:
        return self.params.ncpus

    # ------------------------------------------------------------------ constants
    @property
    def PAGE_SIZE(self) -> int:
        return self.params.page_size

    @property
    def KMALLOC_MIN_SIZE(self) -> int:
        return self.params.kmalloc_min_size

    @property
    def KMALLOC_MAX_CACHE_SIZE(self) -> int:
        return self.params.kmalloc_max_cache_size

    @property
    def KMALLOC_MAX_SIZE(self) -> int:
        return self.params.kmalloc_max_size

    def constants(self) -> dict[str, Prediction[int]]:
        """The constants a probe module can print, as predictions."""
        p = self.params
        slab_h = "include/linux/slab.h"
        known = {
            "PAGE_SIZE": exact(p.page_size, "arch page.h:PAGE_SHIFT"),
            "ARCH_KMALLOC_MINALIGN": exact(p.arch_kmalloc_minalign,
                                           f"{slab_h}:ARCH_KMALLOC_MINALIGN"),
            "KMALLOC_MIN_SIZE": exact(p.kmalloc_min_size, f"{slab_h}:KMALLOC_MIN_SIZE"),
            "KMALLOC_SHIFT_LOW": exact(p.kmalloc_shift_low, f"{slab_h}:KMALLOC_SHIFT_LOW"),
            "KMALLOC_SHIFT_HIGH": exact(p.kmalloc_shift_high,
                                        f"{slab_h}:KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1"),
            "KMALLOC_SHIFT_MAX": exact(p.kmalloc_shift_max,
                                       f"{slab_h}:KMALLOC_SHIFT_MAX ({p.max_order_name})"),
            "KMALLOC_MAX_CACHE_SIZE": exact(p.kmalloc_max_cache_size,
                                            f"{slab_h}:KMALLOC_MAX_CACHE_SIZE"),
            "KMALLOC_MAX_SIZE": exact(p.kmalloc_max_size, f"{slab_h}:KMALLOC_MAX_SIZE"),
            "MAX_PAGE_ORDER": exact(p.max_page_order, f"include/linux/mmzone.h:{p.max_order_name}"),
            "NR_PAGE_ORDERS": exact(p.nr_page_orders, "include/linux/mmzone.h (buddyinfo columns)"),
        }
        if p.arch_dma_minalign is not None:      # 5.10 x86 does not define it
            known["ARCH_DMA_MINALIGN"] = exact(p.arch_dma_minalign,
                                               "asm/cache.h:ARCH_DMA_MINALIGN")
        return known

    def constant(self, name: str) -> Prediction[int]:
        try:
            return self.constants()[name]
        except KeyError:
            raise ModelError(f"unknown constant {name}; known: {sorted(self.constants())}") from None

    # ------------------------------------------------------------------ kmalloc
    def kmalloc_type(self, gfp_flags: str = "GFP_KERNEL") -> str:
        """normal, reclaim, cgroup or dma (include/linux/slab.h:kmalloc_type())."""
        flags = gfp.parse_gfp(gfp_flags) - gfp.SLAB_BUG_MASK
        return gfp.kmalloc_type(flags, zone_dma=self.params.zone_dma,
                                memcg=self.params.memcg_kmalloc)

    def _check_size(self, size: int) -> None:
        if size < 0:
            raise ModelError(f"size must be >= 0, not {size}")

    def kmalloc_cache_for(self, size: int, gfp_flags: str = "GFP_KERNEL") -> Prediction[str | None]:
        """Name of the cache kmalloc(size, gfp) uses; None for size 0 (ZERO_SIZE_PTR) and the
        page-allocator path above KMALLOC_MAX_CACHE_SIZE."""
        self._check_size(size)
        p = self.params
        rule = f"{p.rule_kmalloc_slab} + kmalloc_info[] + include/linux/slab.h:kmalloc_type()"
        if size == 0:
            return exact(None, "include/linux/slab.h:ZERO_SIZE_PTR", "kmalloc(0) returns "
                         "ZERO_SIZE_PTR without touching a cache")
        if size > p.kmalloc_max_cache_size:
            return exact(None, p.rule_kmalloc_large,
                         f"{size} > KMALLOC_MAX_CACHE_SIZE {p.kmalloc_max_cache_size}: pages")
        ktype = self.kmalloc_type(gfp_flags)
        name = kmalloc.kmalloc_cache_name(p, size, ktype)
        if ktype == "normal" and p.random_kmalloc:
            return Prediction(name, rule + " + hash_64(caller ^ random_kmalloc_seed)", False,
                              None, "RANDOM_KMALLOC_CACHES: one of kmalloc-<n> and "
                              "kmalloc-rnd-01..15-<n>, chosen per call site at boot")
        return exact(name, rule)

    def ksize(self, size: int, gfp_flags: str = "GFP_KERNEL") -> Prediction[int]:
        """ksize(kmalloc(size, gfp)) with Debian's debug settings (mm/slab.h:slab_ksize())."""
        self._check_size(size)
        p = self.params
        if size == 0:
            return exact(0, "mm/slab_common.c:ksize(): ZERO_SIZE_PTR -> 0")
        if size > p.kmalloc_max_size:
            return exact(0, "mm/page_alloc.c:__alloc_pages(): order > "
                         f"{p.max_order_name} -> NULL (WARN unless __GFP_NOWARN); ksize(NULL) 0")
        if size > p.kmalloc_max_cache_size:
            order = kmalloc.large_order(p, size)
            return exact(p.page_size << order,
                         f"{p.rule_kmalloc_large} + mm/slab_common.c:__ksize(): folio_size()")
        cache = kmalloc.kmalloc_slab(p, size, self.kmalloc_type(gfp_flags))
        value = slab.slab_ksize(cache.layout, cache.flags)
        rule = f"{p.rule_kmalloc_slab} + mm/slab.h:slab_ksize() = s->size"
        if p.kfence_sampling:
            return bounded(value, size, value, rule, "KFENCE sampling is on: a sampled object "
                           "reports its exact size (mm/kfence/core.c:kfence_ksize())")
        return exact(value, rule, f"s->size of {cache.name}")

    def may_sleep(self, allocator: str, gfp_flags: str = "GFP_KERNEL") -> Prediction[bool]:
        """Whether ``allocator`` ("kmalloc" with ``gfp_flags``, or "vmalloc") may sleep: what a
        CONFIG_DEBUG_ATOMIC_SLEEP kernel reports when it is called with a spinlock held."""
        if allocator == "vmalloc":
            return exact(True, "mm/vmalloc.c:__get_vm_area_node(): kzalloc_node(GFP_KERNEL) of "
                         "the vm_struct, then alloc_vmap_area(): might_sleep()",
                         "vmalloc() allocates its bookkeeping and pages with GFP_KERNEL")
        if allocator != "kmalloc":
            raise ModelError(f"allocator must be kmalloc or vmalloc, not {allocator!r}")
        blocking = "__GFP_DIRECT_RECLAIM" in gfp.parse_gfp(gfp_flags)
        return exact(blocking, "include/linux/sched/mm.h:might_alloc(): might_sleep_if("
                     "gfpflags_allow_blocking()) in mm/slab.h:slab_pre_alloc_hook()",
                     f"{gfp_flags} {'has' if blocking else 'lacks'} __GFP_DIRECT_RECLAIM")

    def kmalloc_large_order(self, size: int) -> Prediction[int | None]:
        """Page order behind kmalloc(size) above KMALLOC_MAX_CACHE_SIZE, None below it."""
        self._check_size(size)
        p = self.params
        if size <= p.kmalloc_max_cache_size:
            return exact(None, p.rule_kmalloc_slab, "served by a slab cache")
        order = kmalloc.large_order(p, size)
        reason = ""
        if order > p.max_page_order:
            reason = (f"order {order} > {p.max_order_name}: __alloc_pages() WARNs and returns "
                      "NULL")
        return exact(order, f"{p.rule_kmalloc_large} + {R_GETORDER}", reason)

    def krealloc(self, old_ksize: int, new_size: int) -> Prediction[kmalloc.KreallocStep]:
        """krealloc() of an object with ksize ``old_ksize`` to ``new_size`` (GFP_KERNEL):
        in place while it fits, else a new kmalloc(new_size)."""
        self._check_size(new_size)
        step = kmalloc.krealloc_step(self.params, old_ksize, new_size,
                                     self.ksize(new_size).value)
        why = (f"{new_size} <= ksize {old_ksize}: same object" if not step.moved else
               f"{new_size} > ksize {old_ksize}: kmalloc({new_size}) + memcpy")
        return exact(step, "mm/slab_common.c:__do_krealloc(): ks >= new_size keeps the object",
                     why)

    def kvmalloc(self, size: int) -> Prediction[vmalloc.KvmallocPlan]:
        """kvmalloc(size, GFP_KERNEL): kmalloc first (with __GFP_NORETRY above PAGE_SIZE), the
        vmalloc fallback only when that fails -- always above KMALLOC_MAX_SIZE (the order is too
        large), otherwise only under fragmentation, which an idle guest does not have."""
        self._check_size(size)
        p = self.params
        rule = "mm/util.c:kvmalloc_node() (6.12 __kvmalloc_node_noprof())"
        if 0 < size <= p.kmalloc_max_size:
            return exact(vmalloc.KvmallocPlan(size, False, self.ksize(size).value), rule,
                         "kmalloc succeeds in an idle guest")
        plan = vmalloc.vmalloc_plan(p, size)
        pmd = vmalloc.pmd_size(p)
        if size >= pmd and size % pmd:
            return Prediction(vmalloc.KvmallocPlan(size, True, 0, plan.areas), rule, False, None,
                              "VM_ALLOW_HUGE_VMAP may round the area up to PMD_SIZE where the "
                              "arch maps huge vmalloc")
        return exact(vmalloc.KvmallocPlan(size, True, 0, plan.areas),
                     f"{rule} -> __vmalloc_node_range(VM_ALLOW_HUGE_VMAP)",
                     f"{size} > KMALLOC_MAX_SIZE {p.kmalloc_max_size}: vmalloc; a multiple of "
                     "PMD_SIZE, so huge mappings would not change the area")

    def kmalloc_waste(self, size: int, gfp_flags: str = "GFP_KERNEL") -> Prediction[Waste]:
        """Internal waste of kmalloc(size): ksize - size, and its share of ksize."""
        k = self.ksize(size, gfp_flags)
        return Prediction(Waste(size, k.value), k.rule, k.exact, None if k.exact else
                          (0, max(k.value - size, 0)), k.reason)

    def kmalloc_size_roundup(self, size: int) -> Prediction[int]:
        return exact(kmalloc.kmalloc_size_roundup(self.params, size),
                     f"{R_ROUNDUP} ({self.params.kmalloc_roundup} variant)")

    def kmalloc_caches(self) -> Prediction[dict[str, kmalloc.KmallocCache]]:
        """Every kmalloc cache created at boot, with geometry (mm/slab_common.c:
        create_kmalloc_caches())."""
        p = self.params
        reason = ""
        if p.random_kmalloc:
            reason = "kmalloc-rnd-NN-<n> copies are not listed"
        return Prediction(kmalloc.kmalloc_caches(p), "mm/slab_common.c:create_kmalloc_caches() "
                          "+ new_kmalloc_cache() + create_boot_cache()", True, None, reason)

    def kmalloc_cache(self, name: str) -> kmalloc.KmallocCache:
        caches = kmalloc.kmalloc_caches(self.params)
        if name not in caches:
            raise ModelError(f"{self!r} has no cache {name!r}")
        return caches[name]

    def explain_kmalloc(self, size: int, gfp_flags: str = "GFP_KERNEL") -> str:
        from kmodlab.model.explain import explain_kmalloc
        return explain_kmalloc(self, size, gfp_flags)

    # ------------------------------------------------------------------ slab caches
    def _flags(self, flags: str | SlabFlag | None) -> SlabFlag:
        return slab.parse_slab_flags(flags, self.params)

    def calculate_alignment(self, size: int, align: int = 0,
                            flags: str | SlabFlag | None = None) -> Prediction[int]:
        return exact(slab.calculate_alignment(self.params, self._flags(flags), align, size),
                     R_ALIGN)

    def slab_layout(self, object_size: int, align: int = 0, flags: str | SlabFlag | None = None,
                    ctor: bool = False, freeptr_offset: int | None = None
                    ) -> Prediction[slab.SlabLayout]:
        """s->size, s->align, s->offset... for kmem_cache_create(object_size, align, flags)."""
        f = self._flags(flags)
        a = slab.calculate_alignment(self.params, f, align, object_size)
        return exact(slab.calculate_sizes(self.params, object_size, a, f, ctor, freeptr_offset),
                     f"{R_ALIGN} + {R_SIZES}")

    def slab_size(self, object_size: int, align: int = 0, flags: str | SlabFlag | None = None,
                  ctor: bool = False) -> Prediction[int]:
        """s->size (the slabinfo objsize) of a new cache."""
        layout = self.slab_layout(object_size, align, flags, ctor)
        return exact(layout.value.size, layout.rule)

    def shared_slab_count_noise(self) -> str:
        """Why active_objs of a cache shared with the rest of the kernel cannot be bounded on
        this kernel, or "" when one slab per CPU is the honest bound."""
        return slab.KASAN_QUARANTINE if self.params.kasan_generic else ""

    def slab_order(self, size: int) -> Prediction[int]:
        """oo_order(s->oo) for a cache whose s->size is ``size``."""
        p = self.params
        return exact(slab.calculate_order(p, size),
                     f"{R_ORDER} ({p.calculate_order} algorithm, min_objects "
                     f"{p.min_objects} for {p.ncpus} CPU(s))")

    def objects_per_slab(self, size: int) -> Prediction[int]:
        order = self.slab_order(size)
        return exact(slab.order_objects(self.params, order.value, size),
                     f"{order.rule} + mm/slub.c:order_objects()")

    def slab_geometry(self, size: int) -> Prediction[slab.SlabGeometry]:
        order = self.slab_order(size)
        return exact(slab.slab_geometry(self.params, size), order.rule)

    def kmem_cache(self, object_size: int, align: int = 0, flags: str | SlabFlag | None = None,
                   ctor: bool = False, usersize: int = 0,
                   freeptr_offset: int | None = None) -> Prediction[KmemCacheInfo]:
        """Layout, geometry, ksize and merge class of kmem_cache_create(...)."""
        p = self.params
        f = self._flags(flags)
        layout = self.slab_layout(object_size, align, f, ctor, freeptr_offset).value
        geometry = slab.slab_geometry(p, layout.size)
        why = slab.cache_unmergeable(p, f, ctor, usersize)
        info = KmemCacheInfo(
            layout, geometry, slab.slab_ksize(layout, f), slab.min_partial(layout.size, p),
            slab.cpu_partial_slabs(layout.size, geometry.objects, p), why,
            None if why else slab.create_unique_id(layout.size, f))
        return exact(info, f"{R_ALIGN} + {R_SIZES} + {R_ORDER} + {R_UNIQUE}")

    def sheaf_capacity(self, size: int, flags: str | SlabFlag | None = None) -> int:
        """Objects one per-CPU sheaf holds for a cache with s->size ``size`` (0: none)."""
        return slab.sheaf_capacity(size, self._flags(flags), self.params)

    def slabs_for_objects(self, n: int, size: int, flags: str | SlabFlag | None = None
                          ) -> Prediction[int]:
        """Slabs holding n live objects allocated from an empty cache: ceil(n / objs) if all
        came from one CPU; each other CPU that allocated may hold one more partial slab.
        With sheaves (7.0+) a CPU takes a whole sheaf of objects from the slabs at a time, so
        the slabs hold ceil(n / capacity) sheaves' worth."""
        if n < 0:
            raise ModelError("n must be >= 0")
        objs = self.objects_per_slab(size).value
        cap = self.sheaf_capacity(size, flags)
        taken = -(-n // cap) * cap if cap else n
        lo = -(-taken // objs)
        # each other CPU that allocated may hold one more sheaf (or, without sheaves, one more
        # CPU slab) of objects
        others = min(self.params.ncpus, n) - 1 if n else 0
        hi = -(-(taken + others * (cap or objs)) // objs)
        if cap:
            rule = ("mm/slub.c:refill_sheaf(): an empty per-CPU sheaf is filled with "
                    f"{cap} objects from the slabs at once (calculate_sheaf_capacity())")
        else:
            rule = "mm/slub.c:___slab_alloc() + new_slab(): a slab is allocated when the " \
                   "CPU slab and partial lists are empty"
        if hi == lo:
            return exact(lo, rule)
        return bounded(lo, lo, hi, rule, "allocations from several CPUs each start their own "
                       "CPU slab" if not cap else "each allocating CPU fills its own sheaf")

    def live_objects_per_slab(self, n: int, size: int, flags: str | SlabFlag | None = None
                              ) -> Prediction[tuple[int, ...]] | None:
        """How many of n objects allocated on one CPU from an empty cache with sheaves lie in
        each slab, in slab order; None without sheaves or with more than one CPU.

        A sheaf is refilled with ``capacity`` objects taken slab after slab and hands them out
        from its top (mm/slub.c:alloc_from_pcs(): ``objects[--size]``), so the live objects
        are every earlier sheaf's and the last r taken for the current one."""
        cap = self.sheaf_capacity(size, flags)
        if not cap or self.params.ncpus != 1 or n <= 0:
            return None
        objs = self.objects_per_slab(size).value
        k = -(-n // cap)
        r = n - (k - 1) * cap
        live = [*range((k - 1) * cap), *range(k * cap - r, k * cap)]
        counts = [0] * -(-(k * cap) // objs)
        for i in live:
            counts[i // objs] += 1
        return exact(tuple(counts), "mm/slub.c:refill_sheaf() takes objects slab after slab; "
                     "alloc_from_pcs() hands out the sheaf's top object first")

    def slabinfo_after_alloc(self, n: int, size: int, shrunk: bool = False,
                             flags: str | SlabFlag | None = None
                             ) -> Prediction[SlabinfoCounts]:
        """/proc/slabinfo columns of a fresh cache holding n objects.  Unshrunk, free slots of
        CPU and per-cpu partial slabs count as active (mm/slub.c:get_slabinfo()), so
        active_objs == num_objs; after writing 1 to /sys/kernel/slab/<c>/shrink only the n
        live objects are active (verified 39/39 -> 5/39).  With sheaves there is no CPU slab:
        the objects a sheaf holds count as active, the free slots of the slabs do not."""
        slabs = self.slabs_for_objects(n, size, flags)
        objs = self.objects_per_slab(size).value
        num = slabs.value * objs
        cap = self.sheaf_capacity(size, flags)
        unshrunk = -(-n // cap) * cap if cap else num
        counts = SlabinfoCounts(n if shrunk else unshrunk, num, slabs.value)
        rule = "mm/slub.c:get_slabinfo() + count_partial()"
        if slabs.exact:
            return exact(counts, rule)
        return bounded(counts, slabs.bound[0], slabs.bound[1], rule,  # type: ignore[index]
                       "bound is on num_slabs: " + slabs.reason)

    def would_merge(self, object_size: int, align: int = 0, flags: str | SlabFlag | None = None,
                    ctor: bool = False, usersize: int = 0,
                    existing: Sequence[slab.MergeCandidate] = ()) -> Prediction[MergeVerdict]:
        """Would kmem_cache_create() alias an existing cache?  ``existing`` lists candidates
        oldest first; kmalloc caches are never targets (they are unmergeable by construction),
        and SLAB_ACCOUNT only restricts the choice to other SLAB_ACCOUNT caches."""
        p = self.params
        f = self._flags(flags)
        layout = self.slab_layout(object_size, align, f, ctor).value
        blocked = slab.cache_unmergeable(p, f, ctor, usersize)
        if blocked:
            return exact(MergeVerdict(False, None, None, blocked), R_MERGE)
        uid = slab.create_unique_id(layout.size, f)
        target = slab.find_mergeable(p, object_size, align, f, ctor, existing)
        reason = (f"merges into {target.name}" if target else
                  f"mergeable: joins any cache of class {uid}; none among the candidates")
        return exact(MergeVerdict(True, target.name if target else None, uid, reason),
                     f"{R_MERGE} + {R_UNIQUE}")

    def sysfs_alias_name(self, object_size: int, align: int = 0,
                         flags: str | SlabFlag | None = None) -> Prediction[str]:
        """The ``/sys/kernel/slab/:[flags-]<size>`` id shared by a mergeable cache class."""
        f = self._flags(flags)
        size = self.slab_layout(object_size, align, f).value.size
        return exact(slab.create_unique_id(size, f), R_UNIQUE)

    # ------------------------------------------------------------------ pages / buddy
    def get_order(self, size: int) -> Prediction[int]:
        return exact(pages.get_order(size, self.params.page_shift), R_GETORDER)

    def max_page_order(self) -> Prediction[int]:
        p = self.params
        return exact(p.max_page_order, f"include/linux/mmzone.h:{p.max_order_name}")

    def _check_order(self, order: int) -> None:
        if not 0 <= order <= self.params.max_page_order:
            raise ModelError(f"order must be 0..{self.params.max_page_order}, not {order}")

    def pages_for_order(self, order: int) -> Prediction[int]:
        self._check_order(order)
        return exact(1 << order, "mm/page_alloc.c: an order-n block is 2^n pages")

    def bytes_for_order(self, order: int) -> Prediction[int]:
        self._check_order(order)
        return exact(self.params.page_size << order, "PAGE_SIZE << order")

    def block_alignment(self, order: int) -> Prediction[int]:
        """Physical alignment of an order-n block: buddies are found by pfn ^ (1 << order)
        (mm/internal.h:__find_buddy_pfn()), so blocks are aligned to their size."""
        self._check_order(order)
        return exact(self.params.page_size << order, "mm/internal.h:__find_buddy_pfn()")

    def is_pcp_order(self, order: int) -> bool:
        return pages.pcp_allowed_order(self.params, order)

    def _pcp_bound(self, counts: Sequence[int], order: int, count: int,
                   batch: int | None = None) -> tuple[int, int]:
        per_refill = pages.pcp_refill_blocks(self.params, order, batch)
        refills = -(-count // per_refill)
        fp = pages.free_pages(counts)
        return fp - refills * per_refill * (1 << order), fp

    def zone_pcp_batch(self, managed_pages: int) -> Prediction[int]:
        """pcp->batch of a zone with ``managed_pages`` (/proc/zoneinfo "managed" -> "batch")."""
        return exact(pages.pcp_batch(managed_pages, self.params.page_shift),
                     "mm/page_alloc.c:zone_batchsize() + zone_set_pageset_high_and_batch()")

    def buddy_alloc(self, counts: Sequence[int], order: int, count: int = 1, *,
                    migratetype_counts: Mapping[str, Sequence[int]] | None = None,
                    gfp_flags: str = "GFP_KERNEL", pcp_batch: int | None = None,
                    zone: str | None = None) -> Prediction[tuple[int, ...]]:
        """Buddyinfo counts of the zone while ``count`` order-``order`` blocks are held.

        Orders 4..8 and 10 go straight to the buddy lists: exact (mm/page_alloc.c:
        __rmqueue_smallest() splits the smallest free block of order >= requested).  Given
        ``migratetype_counts`` (the free-list lengths per migratetype, as /proc/pagetypeinfo
        prints them) the block is looked up on the request's own migratetype list, with the
        fallback claim of a whole block >= pageblock_order when that list is empty
        (:func:`pages.rmqueue_typed`); without them the smallest block of any type is assumed.
        pcp orders (0..3 and 9) are usually served from per-cpu lists: the value is 'no
        change', the bound is on the zone's buddy-free pages (a refill may take up to
        batch-sized chunks; ``pcp_batch`` is the zone's pcp->batch)."""
        self._check_order(order)
        counts = tuple(counts)
        if len(counts) != self.params.nr_page_orders:
            raise ModelError(f"expected {self.params.nr_page_orders} order counts, got "
                             f"{len(counts)}")
        if self.is_pcp_order(order):
            lo, hi = self._pcp_bound(counts, order, count, pcp_batch)
            return bounded(counts, lo, hi, R_PCP,
                           f"order {order} uses the per-cpu lists; bound is on the zone's "
                           "buddy-free pages (refills of max(batch >> order, 2) blocks)")
        if migratetype_counts is not None:
            return self._buddy_alloc_typed(counts, order, count, migratetype_counts, gfp_flags,
                                           zone)
        after, done = pages.simulate_alloc(counts, order, count)
        if done < count:
            return Prediction(after, R_BUDDY, False, None,
                              f"only {done} of {count} blocks fit; the rest falls back to "
                              "other zones/migratetypes or fails")
        return exact(after, R_BUDDY, "assumes the smallest free block is of the request's "
                     "migratetype (else __rmqueue_fallback() steals a pageblock)")

    def _buddy_alloc_typed(self, counts: tuple[int, ...], order: int, count: int,
                           migratetype_counts: Mapping[str, Sequence[int]], gfp_flags: str,
                           zone: str | None) -> Prediction[tuple[int, ...]]:
        mt = gfp.migratetype(gfp.parse_gfp(gfp_flags))
        typed = {name: list(migratetype_counts.get(name, (0,) * len(counts)))
                 for name in pages.FALLBACKS}
        state = list(counts)
        how = []
        for _ in range(count):
            k, why = pages.rmqueue_typed(self.params, state, typed, order, mt)
            if k is None or (why == "claim" and zone == "Normal"):
                fp = pages.free_pages(counts) - (count << order)
                reason = why if k is None else ("ALLOC_NOFRAGMENT in ZONE_NORMAL prefers other "
                                                "zones before a fallback")
                return bounded(counts, fp, fp, f"{R_BUDDY} + __rmqueue_fallback()",
                               f"{reason}; bound is on the zone's buddy-free pages, which drop "
                               f"by exactly {count << order}")
            how.append(f"order {k} ({why})")
        rule = R_BUDDY if all("smallest" in h for h in how) else \
            f"{R_BUDDY} + __rmqueue_fallback()/__rmqueue_claim()"
        return exact(tuple(state), rule, f"{mt} list; split " + ", ".join(how))

    def buddy_free(self, counts_before: Sequence[int], order: int, count: int = 1, *,
                   pcp_pages: int = 0) -> Prediction[tuple[int, ...]]:
        """Counts after the blocks from :meth:`buddy_alloc` are freed again: the buddies split
        off are still free, so __free_one_page() merges back to the original blocks (verified
        exact restore for 4 x order 5, 6 and 8).  Freed pcp-order blocks go onto the per-cpu
        list; the zone's buddy-free pages then grow by between 0 and everything on that list
        (``pcp_pages`` before the free, plus the blocks): free_unref_page_commit() drains it
        with free_pcppages_bulk() once pcp->count reaches pcp->high."""
        self._check_order(order)
        counts = tuple(counts_before)
        if self.is_pcp_order(order):
            fp = pages.free_pages(counts)
            return bounded(counts, fp, fp + pcp_pages + (count << order),
                           f"{R_PCP} + free_unref_page_commit()",
                           "freed pcp-order pages stay on per-cpu lists until pcp->high; "
                           "bound is on the zone's buddy-free pages")
        return exact(counts, R_MERGE_FREE, "assumes nothing else took the split-off buddies")

    def preferred_zone(self, zones: Iterable[str], gfp_flags: str = "GFP_KERNEL") -> str:
        """The zone an allocation is served from: the highest populated zone allowed by the
        gfp flags (gfp_zone() and the zonelist fallback order)."""
        available = set(zones)
        highest = gfp.highest_zone(gfp.parse_gfp(gfp_flags), highmem=self.params.highmem,
                                   dma32=self.params.zone_dma32)
        order = self.params.zone_fallback
        for zone in order[order.index(highest):]:
            if zone in available:
                return zone
        raise ModelError(f"no zone at or below {highest} in {sorted(available)}")

    def populated_zones(self, ram_bytes: int) -> Prediction[tuple[str, ...]]:
        """The zones /proc/buddyinfo lists for a QEMU guest with ``ram_bytes`` of RAM, lowest
        first (covered up to 3 GiB: above it QEMU's pc machine splits RAM around its PCI hole)."""
        p = self.params
        if ram_bytes > 3 << 30:
            raise ModelError(f"{ram_bytes >> 20} MiB: the model places guest RAM only up to "
                             "3 GiB (above, QEMU's pc machine splits it around the PCI hole)")
        from kmodlab.model import tables

        start = tables.lookup("RAM_BASE", p.arch, p.series)
        end = start + ram_bytes
        zones, low = [], 0
        for name, limit in tables.lookup("ZONE_LIMITS", p.arch, p.series):
            if start < limit and end > low:
                zones.append(name)
            low = limit
        return exact(tuple(zones), tables.source("ZONE_LIMITS"))

    def highmem_zones(self, ram_bytes: int) -> Prediction[tuple[str, ...]]:
        """The zones a HIGHMEM kernel (i386) shows with ``ram_bytes`` of RAM: DMA (below
        16 MiB, arch/x86/include/asm/dma.h:MAX_DMA_PFN), Normal up to the lowmem limit and
        HighMem above it (arch/x86/mm/init_32.c:find_low_pfn_range())."""
        p = self.params
        if not p.highmem:
            raise ModelError(f"{p.arch} {p.series} has no ZONE_HIGHMEM (CONFIG_HIGHMEM is off)")
        from kmodlab.model import tables

        limit = tables.lookup("LOWMEM_LIMIT", p.arch, p.series)
        zones = ("DMA", "Normal", "HighMem") if ram_bytes > limit else ("DMA", "Normal")
        return exact(zones, "arch/x86/mm/init_32.c:find_low_pfn_range(): lowmem ends at "
                     f"{limit:#x} ({tables.source('LOWMEM_LIMIT').split(';')[0]})")

    def buddyinfo_after_alloc(self, buddyinfo: Mapping[tuple[int, str], Sequence[int]],
                              order: int, count: int = 1, gfp_flags: str = "GFP_KERNEL",
                              node: int = 0) -> Prediction[dict[tuple[int, str], tuple[int, ...]]]:
        """:meth:`buddy_alloc` applied to the zone a GFP request lands in."""
        zone = self.preferred_zone((z for n, z in buddyinfo if n == node), gfp_flags)
        inner = self.buddy_alloc(buddyinfo[(node, zone)], order, count)
        state = {k: tuple(v) for k, v in buddyinfo.items()}
        state[(node, zone)] = inner.value
        return Prediction(state, inner.rule, inner.exact, inner.bound,
                          f"zone {zone}: {inner.reason}" if inner.reason else f"zone {zone}")

    # ------------------------------------------------------------------ vmalloc
    def vmalloc(self, size: int) -> Prediction[vmalloc.VmallocPlan]:
        """Areas (vmallocinfo lines), page array and bookkeeping of vmalloc(size)."""
        self._check_size(size)
        return exact(vmalloc.vmalloc_plan(self.params, size), R_VMALLOC)

    def vmalloc_pages(self, size: int) -> Prediction[int]:
        return exact(vmalloc.vmalloc_pages(self.params, size), R_VMALLOC)

    def vmallocinfo_size(self, size: int) -> Prediction[int]:
        """The size field of vmalloc(size)'s line: pages plus the guard page."""
        plan = vmalloc.vmalloc_plan(self.params, size)
        return exact(plan.areas[0].size if plan.areas else 0,
                     "mm/vmalloc.c:__get_vm_area_node(): size += PAGE_SIZE (guard)")

    def vmalloc_entries(self, size: int) -> Prediction[int]:
        """Number of vmallocinfo lines vmalloc(size) adds (2 above 512 pages: nested array)."""
        return exact(len(vmalloc.vmalloc_plan(self.params, size).areas),
                     "mm/vmalloc.c:__vmalloc_area_node(): array_size > PAGE_SIZE -> "
                     "__vmalloc_node()")

    def ioremap(self, offset: int, size: int) -> Prediction[vmalloc.IoremapPlan]:
        """ioremap(bar + offset, size) of a page-aligned BAR: the vmallocinfo line's size
        (flag ioremap, phys= the page-aligned address, no pages) and the address's alignment."""
        self._check_size(size)
        return exact(vmalloc.ioremap_plan(self.params, offset, size), R_IOREMAP)

    # ------------------------------------------------------------------ DMA
    def dma_alloc_coherent(self, size: int, mask_bits: int = 32, cmdline: str = ""
                           ) -> Prediction[dma.DmaCoherentPlan]:
        """Where dma_alloc_coherent(dev, size) of a device with a ``mask_bits`` coherent mask
        takes its buffer (CMA or a buddy block, how many pages, their alignment and zone flag),
        on a kernel booted with ``cmdline`` (its ``cma=``)."""
        self._check_size(size)
        return exact(dma.coherent_plan(self.params, size, mask_bits, cmdline), R_DMA)

    def cma_total_kb(self, cmdline: str = "") -> Prediction[int | None]:
        """/proc/meminfo CmaTotal (None: no such line, the kernel has no CONFIG_CMA)."""
        size = dma.cma_bytes(self.params, cmdline)
        return exact(None if size is None else size // 1024,
                     "kernel/dma/contiguous.c:dma_contiguous_reserve() (cma= or "
                     "CONFIG_CMA_SIZE_MBYTES) + mm/cma.c:totalcma_pages (fs/proc/meminfo.c)")

    # ------------------------------------------------------------------ mempool
    def mempool_create(self, min_nr: int, kind: str = "kmalloc", *,
                       element_size: int | None = None, cache_name: str | None = None,
                       order: int = 0) -> Prediction[mempool.MempoolPlan]:
        plan = mempool.mempool_plan(self.params, min_nr, kind, element_size=element_size,
                                    cache_name=cache_name, order=order)
        if min_nr == 0:
            return Prediction(plan, R_MEMPOOL, False, (0, 1),
                              "min_nr 0: later kernels keep one element and a 1-slot array "
                              "(max(1, min_nr)); bound is on preallocated elements")
        return exact(plan, R_MEMPOOL)

    def mempool_alloc(self, min_nr: int, allocs: int, frees: int = 0,
                      allocator_fails: bool = False) -> Prediction[mempool.MempoolUse]:
        """Reserve and allocator use after allocs/frees (the reserve is only touched when the
        underlying allocator fails; an idle VM never makes it fail)."""
        return exact(mempool.mempool_use(min_nr, allocs, frees, allocator_fails),
                     R_MEMPOOL_ALLOC)

    def mempool_resize(self, min_nr: int, curr_nr: int, new_min_nr: int
                       ) -> Prediction[mempool.MempoolResize]:
        """mempool_resize(pool, new_min_nr) of a pool with ``min_nr``/``curr_nr``."""
        cache = kmalloc.kmalloc_cache_name(self.params, min_nr * self.params.pointer_size)
        return exact(mempool.mempool_resize(self.params, min_nr, curr_nr, new_min_nr, cache),
                     "mm/mempool.c:mempool_resize()")

    # ------------------------------------------------------------------ percpu
    def alloc_percpu(self, size: int, align: int | None = None
                     ) -> Prediction[percpu.PercpuAlloc]:
        return exact(percpu.percpu_alloc(self.params, size, align), R_PERCPU)

    def percpu_sum(self, values_per_cpu: Sequence[int]) -> Prediction[int]:
        """What a percpu counter reads as: the sum of every possible CPU's copy
        (for_each_possible_cpu() + per_cpu_ptr()); one value per possible CPU is required."""
        if len(values_per_cpu) != self.params.ncpus:
            raise ModelError(f"expected {self.params.ncpus} per-CPU values, got "
                             f"{len(values_per_cpu)}")
        return exact(percpu.percpu_sum(list(values_per_cpu)),
                     "include/linux/cpumask.h:for_each_possible_cpu() + per_cpu_ptr()")

    def percpu_meminfo_delta_kb(self, size: int) -> Prediction[int]:
        """Change of /proc/meminfo Percpu after one small alloc_percpu(): usually none (served
        from the populated first chunk; verified), but pcpu_balance_workfn() may populate pages
        for all units asynchronously: up to PCPU_EMPTY_POP_PAGES_HIGH empty ones for each chunk
        type (5.10 balances the memcg chunks too, measured +32 kB on i386 5.10)."""
        p = self.params
        a = percpu.percpu_alloc(p, size)
        pages_needed = -(-a.size // p.page_size) + p.pcpu_empty_pop_pages_high * p.pcpu_chunk_types
        hi = pages_needed * p.ncpus * p.page_size // 1024
        return bounded(0, 0, hi, R_PERCPU_MEMINFO, "population happens in steps of nr_units "
                       "pages, asynchronously")

    # ------------------------------------------------------------------ devres
    def devres_header_size(self) -> Prediction[int]:
        return exact(self.params.devres_header_size, R_DEVRES)

    def devm_kmalloc(self, size: int) -> Prediction[devres.DevresAlloc]:
        """What devm_kmalloc(dev, size) allocates; freed (newest first) on unbind."""
        self._check_size(size)
        return exact(devres.devm_kmalloc(self.params, size),
                     f"{R_DEVRES} + {self.params.rule_kmalloc_slab}")

    def devres_release_order(self, resources: Sequence[object]) -> list[object]:
        return devres.devres_release_order(resources)
