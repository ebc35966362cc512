"""kmalloc: size classes, ksize, the page-allocator threshold, kmalloc types, krealloc, kvmalloc.

Which cache served an object is read from the kernel itself (kmem_dump_obj(), printed by the
module), so the kmalloc_type() x size_index[] prediction is checked for every (size, gfp) pair.
In /proc/slabinfo the objects are counted exactly only where nothing else allocates: the
dma-kmalloc caches.  kmalloc-cg/rcl caches are shared with user space and filesystems, so their
counts are bounded by one CPU slab of free objects per CPU (counted as active, mm/slub.c:
get_slabinfo()); plain kmalloc caches also gain the module's own sysfs objects at load, so their
counts are shown for information only.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator

from kmodlab.check.common import active_delta, lifecycle_rows, objperslab, populated_zones
from kmodlab.check.observation import Observation, Probe, slab_dump, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules import gfp as gfp_mod
from kmodlab.modules.params.kmalloc import KmallocParams

FAMILY = "kmalloc"
SIZES = (8, 64, 96, 160, 192, 256, 1000, 4096, 8192, 8193, 65536, 1 << 20)
GFPS = ("GFP_KERNEL", "GFP_ATOMIC", "GFP_KERNEL_ACCOUNT", "GFP_KERNEL|GFP_DMA",
        "GFP_KERNEL|__GFP_RECLAIMABLE")
COUNT = 4
KREALLOC = (64, 100, 200, 5000, 10000, 3000)
KVMALLOC = (65536, 8 << 20)
CONSTANTS = ("KMALLOC_MIN_SIZE", "KMALLOC_MAX_CACHE_SIZE", "KMALLOC_MAX_SIZE", "KMALLOC_SHIFT_LOW",
             "KMALLOC_SHIFT_HIGH", "KMALLOC_SHIFT_MAX", "ARCH_KMALLOC_MINALIGN",
             "ARCH_DMA_MINALIGN", "PAGE_SIZE")

R_ALIGN = ("include/linux/slab.h: kmalloc() is aligned to ARCH_KMALLOC_MINALIGN, power-of-two "
           "sizes naturally (Documentation/core-api/memory-allocation.rst)")
R_EXACT_COUNT = "mm/slub.c:get_slabinfo() after kmem_cache_shrink(): active_objs = live objects"
R_CPU_SLAB = "mm/slub.c:get_slabinfo(): free objects of a CPU slab count as active"


def _requests(model: Model, sizes: tuple[int, ...] = SIZES) -> list[tuple[str, int, str]]:
    return [(f"kmalloc_{size}_{gfp_mod.parse_gfp(expr).tag}", size, expr)
            for size in sizes for expr in GFPS]


def probes(model: Model) -> list[Probe]:
    sizes = tuple(s for s in SIZES if s <= model.KMALLOC_MAX_SIZE)
    caches = sorted({c for _n, size, expr in _requests(model, sizes)
                     if (c := model.kmalloc_cache_for(size, expr).value)})
    return [Probe(FAMILY, FAMILY, (
        f"sizes={','.join(map(str, sizes))}", f"gfp={','.join(GFPS)}", f"count={COUNT}",
        f"krealloc={','.join(map(str, KREALLOC))}",
        f"kvmalloc_sizes={','.join(map(str, KVMALLOC))}"), shrink=tuple(caches))]


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    params = obs.params
    assert isinstance(params, KmallocParams)
    phase = obs.load
    _constants(rows, model, values(phase, "kmalloc_constants"))
    zones = populated_zones(obs.baseline)
    api = "kzalloc" if params.zero else "kmalloc"
    per_cache: Counter[str] = Counter()
    for size in params.sizes:
        for expr in params.gfp:
            test = f"{api}_{size}_{gfp_mod.parse_gfp(expr).tag}"
            v = values(phase, test)
            cache = model.kmalloc_cache_for(size, expr)
            if cache.value is not None:
                per_cache[cache.value] += params.count
            _request(rows, model, test, size, expr, v, cache, zones, obs)
    _krealloc(rows, model, obs, list(params.krealloc))
    _kvmalloc(rows, model, obs, list(params.kvmalloc_sizes))
    _slabinfo(rows, model, obs, per_cache)
    lifecycle_rows(rows, obs)
    return iter(rows.rows)


def _constants(rows: Rows, model: Model, v: dict) -> None:
    known = model.constants()
    with rows.grouped("kmalloc constants"):
        for name in CONSTANTS:
            if name in known:            # ARCH_DMA_MINALIGN is not defined everywhere (5.10 x86)
                rows.check("kmalloc_constants", name, known[name], v.get(name))


def _request(rows: Rows, model: Model, test: str, size: int, expr: str, v: dict, cache,
             zones: list[str], obs: Observation) -> None:
    rows.check(test, "ksize", model.ksize(size, expr), v.get("ksize"))
    if model.params.kmalloc_roundup is not None:     # no kmalloc_size_roundup() before 6.1
        rows.check(test, "kmalloc_size_roundup", model.kmalloc_size_roundup(size),
                   v.get("roundup"))
    dump = slab_dump(obs.load, test)
    observed_cache = None if dump is None else (dump.cache or "pages")
    rows.exact(test, "cache (kmem_dump_obj)", cache.value or "pages", observed_cache,
               cache.rule, cache.reason, informational=not cache.exact)
    large = model.kmalloc_large_order(size)
    rows.exact(test, "page allocator (large)", int(large.value is not None), v.get("large"),
               large.rule, f"threshold KMALLOC_MAX_CACHE_SIZE = {model.KMALLOC_MAX_CACHE_SIZE}")
    if large.value is not None:
        rows.check(test, "folio order", large, v.get("folio_order"))
    elif cache.value is not None and cache.exact:
        order = model.slab_order(model.kmalloc_cache(cache.value).size)
        rows.exact(test, "folio order", order.value, v.get("folio_order"), order.rule,
                   f"the slab order of {cache.value}")
    rows.exact(test, "zone", model.preferred_zone(zones, expr), v.get("zone"),
               "include/linux/gfp.h:gfp_zone() + zonelist fallback order")
    want = model.constant("ARCH_KMALLOC_MINALIGN").value
    if size & (size - 1) == 0:
        want = max(want, min(size, model.PAGE_SIZE))
    rows.bounded(test, "address alignment", want, want, model.PAGE_SIZE, v.get("align"),
                 R_ALIGN, "alignment is at least the guarantee (the module caps it at PAGE_SIZE)")


def _krealloc(rows: Rows, model: Model, obs: Observation, sizes: list[int]) -> None:
    if len(sizes) < 2:
        return
    current = model.ksize(sizes[0]).value
    for old, new in itertools.pairwise(sizes):
        test = f"krealloc_{old}_to_{new}"
        v = values(obs.load, test)
        step = model.krealloc(current, new)
        rows.exact(test, "moved", int(step.value.moved), v.get("moved"), step.rule, step.reason)
        rows.exact(test, "ksize", step.value.ksize, v.get("ksize"), step.rule)
        dump = slab_dump(obs.load, test)
        cache = model.kmalloc_cache_for(new) if step.value.moved else None
        if cache is not None and cache.exact:
            rows.exact(test, "cache (kmem_dump_obj)", cache.value or "pages",
                       None if dump is None else (dump.cache or "pages"), cache.rule)
        current = step.value.ksize


def _kvmalloc(rows: Rows, model: Model, obs: Observation, sizes: list[int]) -> None:
    callers: Counter[int] = Counter()
    for size in sizes:
        test = f"kvmalloc_{size}"
        v = values(obs.load, test)
        plan = model.kvmalloc(size)
        rows.exact(test, "vmalloc fallback", int(plan.value.vmalloc), v.get("vmalloc"),
                   plan.rule, plan.reason)
        if plan.value.vmalloc:
            for area in plan.value.areas:
                callers[area.size] += 1
        else:
            rows.exact(test, "ksize", plan.value.ksize, v.get("ksize"), plan.rule)
    if not callers or obs.held is None:
        return
    seen = obs.held.vmallocinfo.by_caller("kml_kvmalloc_one", obs.module)
    rule = "mm/util.c:kvmalloc_node() -> __vmalloc_node_range() + mm/vmalloc.c:__get_vm_area_node()"
    rows.exact("kvmalloc", "vmallocinfo lines of the caller", sum(callers.values()),
               len(seen), rule, "one line per area, plus the nested page array above 512 pages")
    rows.exact("kvmalloc", "vmallocinfo sizes (with guard page)",
               tuple(sorted(callers.elements())), tuple(sorted(e.size for e in seen)), rule)


def _slabinfo(rows: Rows, model: Model, obs: Observation, per_cache: Counter[str]) -> None:
    for cache, n in sorted(per_cache.items()):
        test = f"slabinfo {cache}"
        present = obs.held is not None and cache in obs.held.slabinfo
        rows.exact(test, "slabinfo line", "present",
                   None if obs.held is None else ("present" if present else "absent"),
                   "mm/slab_common.c:create_kmalloc_caches() + kmalloc_info[]")
        delta = active_delta(obs, cache)
        if cache.startswith("dma-kmalloc-"):
            rows.exact(test, "Δactive_objs (shrunk)", n, delta, R_EXACT_COUNT,
                       "nothing else allocates with GFP_DMA in an idle guest")
        else:
            slab = objperslab(obs, cache) or 1
            shared = not cache.startswith(("kmalloc-cg-", "kmalloc-rcl-"))
            slack = model.ncpus * (slab - 1)
            rows.bounded(test, "Δactive_objs (shrunk)", n, n - slack, n + slack, delta,
                         R_CPU_SLAB, f"± the free objects of one CPU slab ({slab} objects) per "
                         "CPU, counted as active after someone allocates"
                         + ("; a shared cache: load adds the module's own sysfs objects"
                            if shared else ""), informational=shared)
