"""devres: what devm_kmalloc() really allocates (header + data, in which kmalloc cache), the
release order on unbind, and that unbinding frees it all.

kmem_dump_obj() on the pointer devm_kmalloc() returned names the cache and the pointer's offset
inside the object: that offset is sizeof(struct devres), the header the model predicts per arch
and version (drivers/base/devres.c).  The caches involved are ordinary kmalloc caches shared
with the rest of the kernel, so "freed on unbind" is a bound: after unload and a shrink each
cache is back at its baseline give or take one slab per CPU (mm/slub.c:get_slabinfo() counts a
CPU slab's free objects as active).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from kmodlab.check.common import (
    active_delta,
    lifecycle_rows,
    objperslab,
    objsize,
    populated_zones,
    released_delta,
)
from kmodlab.check.observation import Observation, Probe, slab_dump, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules.params.devres import DevresParams

FAMILY = "devres"
KMALLOC_SIZES = (64, 1000)
KZALLOC_SIZES = (100, 4000, 10000)
PAGE_ORDER = 2
R_RELEASE = "drivers/base/devres.c:release_nodes(): newest first"
R_CPU_SLAB = "mm/slub.c:get_slabinfo(): a CPU slab's free objects count as active"


def _caches(model: Model) -> list[str]:
    sizes = KMALLOC_SIZES + KZALLOC_SIZES
    return sorted({c for s in sizes if (c := model.devm_kmalloc(s).value.cache)})


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, FAMILY, (
        f"kmalloc_sizes={','.join(map(str, KMALLOC_SIZES))}",
        f"kzalloc_sizes={','.join(map(str, KZALLOC_SIZES))}", f"page_order={PAGE_ORDER}"),
        shrink=tuple(_caches(model)))]


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, DevresParams)
    zones = populated_zones(obs.baseline)
    per_cache: Counter[str] = Counter()
    header = model.devres_header_size()
    minalign = model.constant("ARCH_KMALLOC_MINALIGN").value
    allocs = [("devm_kmalloc", s) for s in p.kmalloc_sizes] + \
        [("devm_kzalloc", s) for s in p.kzalloc_sizes]
    for api, size in allocs:
        test = f"{api}_{size}"
        v = values(obs.load, test)
        plan = model.devm_kmalloc(size)
        dump = slab_dump(obs.load, test)
        cache = plan.value.cache
        rows.exact(test, "kmalloc cache (header + data)", cache or "pages",
                   None if dump is None else (dump.cache or "pages"), plan.rule,
                   f"kmalloc({plan.value.kmalloc_size}) = {header.value} B header + {size}")
        rows.exact(test, "page allocator (large)", int(cache is None), v.get("large"),
                   plan.rule)
        if cache is not None:
            per_cache[cache] += 1
            rows.exact(test, "devres header (pointer offset)", header.value,
                       None if dump is None else dump.offset, header.rule,
                       "devm_kmalloc() returns dr->data, sizeof(struct devres) into the object")
        rows.exact(test, "zone", model.preferred_zone(zones), v.get("zone"),
                   "include/linux/gfp.h:gfp_zone(GFP_KERNEL)")
        rows.bounded(test, "data alignment", minalign, minalign, model.PAGE_SIZE, v.get("align"),
                     "drivers/base/devres.c:struct devres: data[] __aligned(ARCH_KMALLOC_MINALIGN"
                     " / ARCH_DMA_MINALIGN)", "at least the kmalloc guarantee")
    if p.page_order is not None:
        v = values(obs.load, "devm_get_free_pages")
        rows.exact("devm_get_free_pages", "pfn naturally aligned", 1, v.get("aligned"),
                   "mm/internal.h:__find_buddy_pfn(): blocks are aligned to their size")
        rows.exact("devm_get_free_pages", "zone", model.preferred_zone(zones), v.get("zone"),
                   "include/linux/gfp.h:gfp_zone(GFP_KERNEL)")
    _release(rows, model, obs, p)
    _slabinfo(rows, obs, per_cache, model, model.shared_slab_count_noise())
    lifecycle_rows(rows, obs)
    return iter(rows.rows)


def _release(rows: Rows, model: Model, obs: Observation, p: DevresParams) -> None:
    order = model.devres_release_order(["first_registered", "last_registered"])
    seq = {name: i + 1 for i, name in enumerate(order)}
    v = values(obs.unload, "release_order")
    for name in ("last_registered", "first_registered"):
        rows.exact("release_order", f"{name} action released as #", seq[name], v.get(name),
                   R_RELEASE)
    registered = 2 + len(p.kmalloc_sizes) + len(p.kzalloc_sizes) + int(p.page_order is not None)
    rows.exact("devm_add_action", "resources registered by probe", registered,
               values(obs.load, "devm_add_action").get("resources"),
               "drivers/base/devres.c:devres_add()")
    rows.exact("released_all", "resources released on unbind", registered,
               values(obs.unload, "released_all").get("resources"),
               "drivers/base/dd.c:device_unbind_cleanup() -> devres_release_all()")


def _slabinfo(rows: Rows, obs: Observation, per_cache: Counter[str], model: Model,
              noise: str = "") -> None:
    """``noise``: why the shared caches' counts cannot be bounded on this kernel (the rows are
    then shown, not judged)."""
    for cache, n in sorted(per_cache.items()):
        slab = objperslab(obs, cache) or 1
        size = objsize(obs, cache)
        # 7.0+: a CPU's main and spare sheaves hold objects that count as active
        # (mm/slub.c:calculate_sheaf_capacity()); before, its CPU slab's free ones did.
        sheaves = 2 * model.sheaf_capacity(size) if size else 0
        per_cpu = max(slab, sheaves)
        slack = model.ncpus * per_cpu
        rows.bounded(f"slabinfo {cache}", "Δactive_objs while bound (shrunk)", n, n - slack,
                     n + slack, active_delta(obs, cache), R_CPU_SLAB,
                     "a shared cache: the module's own sysfs objects land here too",
                     informational=True)
        rows.bounded(f"slabinfo {cache}", "Δactive_objs after unbind+unload (shrunk)", 0,
                     -slack, slack, released_delta(obs, cache), R_CPU_SLAB,
                     noise or (f"back to the baseline within two sheaves ({per_cpu} objects) "
                               "per CPU: objects a CPU's sheaves hold count as active"
                               if sheaves > slab else
                               f"back to the baseline within one slab ({slab} objects) per "
                               "CPU: a CPU slab's free objects count as active once someone "
                               "allocates from it"), informational=bool(noise))
