"""Claims about the slab tools: which wastage the kernel's slabinfo shows, and what procps'
``vmstat -m`` columns are."""

from __future__ import annotations

from typing import Any

from kmodlab.check.slabinfo_tool import R_TOOL
from kmodlab.claims.judges.base import Finding, Judge, NotMeasured, int_value, register
from kmodlab.claims.measure import slabinfo_test, vmstat_test
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.model import Model

R_WASTE = (f"{R_TOOL}: Loss = SlabObj - Object per object, Lpadd = slab padding; "
           "mm/slub.c:calculate_sizes() (s->size) and calc_slab_order() (objects per slab); "
           "a kmalloc cache's object_size is its class size (mm/slab_common.c:"
           "create_kmalloc_cache()), so a request's rounding is not in it")


def _expected(m: Model, size: int, ctor: bool) -> tuple[int, int, str]:
    """Per-object loss and per-slab padding of a ``size`` cache (with ``ctor``), and the
    kmalloc cache ``size`` rounds up to."""
    cache = m.kmem_cache(size, ctor=ctor).value
    pad = (m.PAGE_SIZE << cache.order) - cache.objects_per_slab * cache.size
    return cache.size - size, pad, str(m.kmalloc_cache_for(size).value)


@register
class SlabinfoShowsWastage(Judge):
    """"Use the kernel's slabinfo utility to see which slabs suffer from wastage"."""

    name = "slabinfo_shows_wastage"

    def model(self, target: ModelTarget, *, size: int, **_: Any) -> Finding:
        loss, pad, kcache = _expected(target.model, size, True)
        return Finding("true", f"{loss} B/object, {pad} B/slab",
                       f"yes for what a cache loses: a {size}-byte cache with a constructor "
                       f"loses {loss} bytes per object and {pad} per slab, and slabinfo says "
                       f"so (Lalig, Lpadd, Loss); but not kmalloc's rounding: kmalloc({size}) "
                       f"uses {kcache}, whose object size is its class size, so its Loss per "
                       "object is 0 however small the requests", R_WASTE,
                       short="yes for a cache's own slack; kmalloc's rounding is invisible to it")

    def measured(self, target: ModelTarget, obs: Observations, *, size: int, probe: str,
                 cache: str, **_: Any) -> Finding | None:
        own = obs.values(probe, slabinfo_test(cache))
        loss, pad, kcache = _expected(target.model, size, True)
        kmalloc = obs.values(probe, slabinfo_test(kcache))
        if not own or not kmalloc:
            return None
        seen_loss = int_value(own, "loss_per_object")
        seen_pad = (int_value(own, "slab_bytes") or 0) - \
            (int_value(own, "objects_per_slab") or 0) * (int_value(own, "slot_size") or 0)
        k_loss, k_obj = int_value(kmalloc, "loss_per_object"), int_value(kmalloc, "object_size")
        ok = seen_loss == loss and seen_pad == pad and k_loss == 0 and k_obj is not None \
            and k_obj >= size
        return Finding("true" if ok else "false", f"{seen_loss} B/object, {seen_pad} B/slab",
                       f"slabinfo on {cache}: Loss {seen_loss} bytes per object, {seen_pad} "
                       f"bytes of padding per slab, Loss {int_value(own, 'loss_bytes')} in all; "
                       f"on {kcache}: object size {k_obj}, Loss per object {k_loss} (each "
                       f"kmalloc({size}) wastes {(k_obj or size) - size} bytes it cannot see)",
                       f"{probe}/slabinfo {cache} + slabinfo {kcache}", ok)


R_VMSTAT_PAGES = ("procps src/vmstat.c:slabformat() prints SLAB_OBJ_PER_SLAB in the Pages "
                  "column: /proc/slabinfo's objperslab (mm/slab_common.c:cache_show()), "
                  "oo_objects(s->oo) from mm/slub.c:calc_slab_order()")


def _pages_holding(m: Model, size: int, count: int) -> tuple[int, int]:
    """Objects per slab of a ``size`` cache with a constructor, and the pages of the slabs
    that hold ``count`` objects after a shrink."""
    cache = m.kmem_cache(size, ctor=True).value
    slabs = m.slabinfo_after_alloc(count, cache.size, shrunk=True).value.num_slabs
    return cache.objects_per_slab, slabs << cache.order


@register
class VmstatPagesColumn(Judge):
    """vmstat(8): "pages: Number of pages with at least one active object"."""

    name = "vmstat_pages_column"

    def model(self, target: ModelTarget, *, size: int, count: int, **_: Any) -> Finding:
        objs, pages = _pages_holding(target.model, size, count)
        return Finding("false", f"Pages {objs}",
                       f"no: the column is objects per slab; {count} {size}-byte objects (with "
                       f"a constructor) sit in slabs of {objs} objects, so vmstat shows {objs}, "
                       f"while the pages holding them are {pages}", R_VMSTAT_PAGES,
                       short="no: it is objects per slab")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str, cache: str,
                 **_: Any) -> Finding | None:
        row = obs.values(probe, vmstat_test(cache))
        if not row:
            return None
        shown, objs = int_value(row, "pages"), int_value(row, "objperslab")
        holding = (int_value(row, "active_slabs") or 0) * (int_value(row, "pagesperslab") or 0)
        if shown is None or objs is None:
            return None
        if objs == holding:
            raise NotMeasured(f"{cache}'s objects per slab ({objs}) equal the pages holding "
                              "objects: the column cannot tell them apart")
        verdict = "true" if shown == holding else "false"
        return Finding(verdict, f"Pages {shown}",
                       f"vmstat -m shows Pages {shown} for {cache}; /proc/slabinfo at the same "
                       f"moment: {objs} objects per slab, {holding} pages in slabs holding "
                       f"objects ({row.get('active_slabs')} slab(s) x {row.get('pagesperslab')} "
                       "page(s))", f"{probe}/vmstat -m {cache} + /proc/slabinfo",
                       verdict == "false" and shown == objs)
