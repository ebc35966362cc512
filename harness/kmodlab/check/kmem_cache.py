"""kmem_cache: a named cache's layout (s->size, objects per slab, order), merging, and its
/proc/slabinfo line while N objects are held (after a shrink: exactly N active).

Probes cover the layout rules of mm/slub.c:calculate_sizes() (HWCACHE_ALIGN, a ctor moving
the free pointer out, debug red zones/poison/tracking) and both outcomes of
mm/slab_common.c:find_mergeable(): a mergeable cache that starts its own class, and one that
joins an existing class (its name then never gets a slabinfo line).  The classes that exist
are read from /sys/kernel/slab/:<id> before load, which is exactly what find_mergeable()
scans.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from kmodlab.check.common import lifecycle_rows, populated_zones
from kmodlab.check.observation import Observation, Probe, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.check.slabinfo_tool import TOOL, own_cache_rows, report_command
from kmodlab.check.vmstat_slabs import kmalloc_rows, vmstat_command
from kmodlab.check.vmstat_slabs import own_cache_rows as vmstat_own_rows
from kmodlab.model import MergeCandidate, Model, SlabFlag
from kmodlab.modules.params.kmem_cache import KmemCacheParams

FAMILY = "kmem_cache"
NAME = "kml_cache"
CONFIGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kmem_cache", ("size=100", "flags=SLAB_HWCACHE_ALIGN,SLAB_NOLEAKTRACE", "count=100")),
    ("kmem_cache/ctor", ("size=100", "flags=", "ctor=true", "count=50")),
    ("kmem_cache/debug", ("size=100", "flags=SLAB_RED_ZONE,SLAB_POISON,SLAB_STORE_USER",
                          "count=30")),
    ("kmem_cache/new-class", ("size=100", "flags=", "count=60")),
    ("kmem_cache/merged", ("size=200", "align=64", "flags=", "count=20")),
)
CLASSES = "ls -1 /sys/kernel/slab | grep '^:' || true"
LINK = f"readlink /sys/kernel/slab/{NAME} || echo '(directory)'"

R_MERGE = "mm/slab_common.c:find_mergeable() + mm/slub.c:__kmem_cache_alias()"
R_SYSFS = "mm/slub.c:sysfs_slab_add(): mergeable caches live under create_unique_id()"
R_CTOR = "mm/slub.c:allocate_slab() -> setup_object(): the ctor runs on every slot of a new slab"
R_STRIDE = "mm/slub.c:calculate_sizes(): objects sit s->size apart in a slab"
_LETTERS = {"d": SlabFlag.CACHE_DMA, "D": SlabFlag.CACHE_DMA32, "a": SlabFlag.RECLAIM_ACCOUNT,
            "F": SlabFlag.CONSISTENCY_CHECKS, "A": SlabFlag.ACCOUNT}
_CLASS = re.compile(r"^:(?:(?P<letters>[dDaFA]+)-)?(?P<size>\d{7})$")


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, name, (f"name={NAME}", *params), shrink=(NAME,),
                  before={"classes": CLASSES},
                  between={"link": LINK, "slabinfo": report_command(NAME),
                           "vmstat": vmstat_command(NAME)}, tools=(TOOL,))
            for name, params in CONFIGS]


def merge_candidates(listing: str) -> list[MergeCandidate]:
    """The mergeable caches, from the ``/sys/kernel/slab/:[flags-]<size>`` directories."""
    out = []
    for line in listing.split():
        m = _CLASS.match(line.strip())
        if not m:
            continue
        flags = SlabFlag.NONE
        for letter in m.group("letters") or "":
            flags |= _LETTERS[letter]
        out.append(MergeCandidate(line.strip(), int(m.group("size")), flags))
    return out


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, KmemCacheParams)
    flags = "|".join(p.flags)
    info = model.kmem_cache(p.size, p.align, flags, p.ctor)
    cache = info.value
    merge = model.would_merge(p.size, p.align, flags, p.ctor,
                              existing=merge_candidates(obs.before.get("classes", "")))
    merged = merge.value.target is not None
    own_line = not merged
    v = values(obs.load, "kmem_cache_alloc")
    create = values(obs.load, "kmem_cache_create")
    test = obs.probe.name.split("/")[-1]

    rows.exact(test, "created", 1, create.get("created"), "mm/slab_common.c:kmem_cache_create()")
    if not merged:
        rows.exact(test, "object_size (kmem_cache_size)", cache.layout.object_size,
                   create.get("kmem_cache_size"), info.rule)
    rows.exact(test, "ksize", cache.ksize, v.get("ksize"), "mm/slab.h:slab_ksize()")
    rows.exact(test, "slab order (folio_order)", cache.order, v.get("slab_order"), info.rule)
    rows.exact(test, "zone", model.preferred_zone(populated_zones(obs.baseline),
                                                  "GFP_DMA" if "SLAB_CACHE_DMA" in p.flags
                                                  else p.gfp),
               v.get("zone"), "include/linux/gfp.h:gfp_zone(): the slab pages' zone")
    rows.bounded(test, "object alignment", cache.layout.align, cache.layout.align,
                 model.PAGE_SIZE, v.get("align"), "mm/slab_common.c:calculate_alignment()",
                 "every object is at least s->align aligned (capped at PAGE_SIZE)")
    if own_line:
        _own_cache(rows, model, obs, test, cache, v, p)
    rows.exact(test, "merged (no slabinfo line of its own)", "yes" if merged else "no",
               None if obs.held is None else ("no" if NAME in obs.held.slabinfo else "yes"),
               merge.rule, merge.value.reason)
    shrink = values(obs.unload, "kmem_cache_shrink").get("ret")
    rule = "mm/slub.c:__kmem_cache_do_shrink(): 1 while any slab of the cache is in use"
    if merged:
        rows.exact(test, "kmem_cache_shrink() after freeing ours", 1, shrink, rule,
                   "the class's other caches keep slabs in use", informational=True)
    else:
        rows.exact(test, "kmem_cache_shrink() after freeing ours", 0, shrink, rule,
                   "every slab is empty and gets freed")
    link = obs.between.get("link", "").strip() or None
    rows.exact(test, "/sys/kernel/slab link", merge.value.unique_id or "(directory)",
               link, R_SYSFS, "unmergeable caches get a directory named after them")
    lifecycle_rows(rows, obs, own_caches=(NAME,) if own_line else ())
    return iter(rows.rows)


def _own_cache(rows: Rows, model: Model, obs: Observation, test: str, cache, v: dict,
               p: KmemCacheParams) -> None:
    """The cache is a line of its own: our objects are all there is, so counts are exact."""
    n = p.count
    objs = cache.objects_per_slab
    flags = "|".join(p.flags)
    slabs = model.slabs_for_objects(n, cache.size, flags)
    if n >= 2:
        rows.exact(test, "stride (s->size)", cache.size, v.get("stride"), R_STRIDE)
    spread = model.live_objects_per_slab(n, cache.size, flags)
    if spread is not None:       # sheaves: the objects handed out are a sheaf's top ones
        rows.exact(test, "max objects seen in one slab", max(spread.value),
                   v.get("max_objs_per_slab"), spread.rule,
                   f"{n} objects over slabs as {'+'.join(map(str, spread.value))}")
    elif n >= objs and not model.sheaf_capacity(cache.size, flags):
        rows.exact(test, "max objects seen in one slab", objs, v.get("max_objs_per_slab"),
                   "mm/slub.c:order_objects(): a full slab")
    if spread is not None:
        rows.exact(test, "slabs holding the objects", sum(1 for c in spread.value if c),
                   v.get("slabs"), spread.rule)
    else:
        rows.check(test, "slabs holding the objects", slabs, v.get("slabs"))
    if p.ctor:
        ctor = values(obs.load, "kmem_cache_ctor")
        rows.exact(test, "ctor calls", slabs.value * objs, ctor.get("ctor_calls"), R_CTOR,
                   f"{slabs.value} slab(s) x {objs} objects")
    if "slabinfo" in obs.probe.between:        # recordings from before the tool have none
        own_cache_rows(rows, model, test, obs.between.get("slabinfo"), cache, n, flags)
    if "vmstat" in obs.probe.between:          # recordings from before vmstat have none
        table = vmstat_own_rows(rows, model, test, obs.between.get("vmstat"), NAME, cache, n,
                                flags)
        if test == FAMILY:                     # the kmalloc caches once per kernel
            kmalloc_rows(rows, model, table)
    line = obs.held.slabinfo.get(NAME) if obs.held is not None else None
    rule = "mm/slab_common.c:cache_show() + mm/slub.c:get_slabinfo()"
    rows.exact(test, "slabinfo objsize", cache.size, line and line.objsize, rule)
    rows.exact(test, "slabinfo objperslab", objs, line and line.objperslab, rule)
    rows.exact(test, "slabinfo pagesperslab", cache.geometry.pages, line and line.pagesperslab,
               rule)
    counts = model.slabinfo_after_alloc(n, cache.size, shrunk=True, flags=flags)
    rows.exact(test, "slabinfo active_objs (shrunk)", counts.value.active_objs,
               line and line.active_objs, counts.rule, "after kmem_cache_shrink()")
    lo, hi = counts.bound or (counts.value.num_slabs, counts.value.num_slabs)
    rows.bounded(test, "slabinfo num_slabs (>= ceil(N/objperslab))", counts.value.num_slabs, lo,
                 hi, line and line.num_slabs, counts.rule,
                 "one CPU fills slab after slab; more CPUs may each start one")
