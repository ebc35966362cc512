"""Rows for the kernel's slabinfo tool: its per-cache sizes and loss figures against the model.

slabinfo (tools/mm/slabinfo.c, built for the guest by :mod:`kmodlab.guest_tools`) reads
/sys/kernel/slab/<cache>/; its report() computes the wastage a cache suffers: per object
(SlabObj - Object, times objects: "Lalig"), at the end of each slab (SlabSiz - objects per
slab * SlabObj, times slabs: "Lpadd"), and in all ("Loss" = slabs * SlabSiz - objects *
Object, free slots included).  The model predicts each from mm/slub.c's layout and geometry.
"""

from __future__ import annotations

from kmodlab.check.rows import Rows
from kmodlab.guest_tools import guest_path
from kmodlab.model import Model
from kmodlab.observe.slabinfo_tool import SlabinfoReport, parse_report
from kmodlab.phases import shrink_command

TOOL = "slabinfo"
R_TOOL = "tools/mm/slabinfo.c:report() (tools/vm/ before 6.3) from /sys/kernel/slab/<cache>/"


def report_command(cache: str) -> str:
    """Shrink ``cache`` (so only live objects count), then slabinfo's report on it alone.  For
    a mergeable cache (a link to its class, ``:0000104``) the tool reads every class and names
    the one the link matches after it; the others become "*": one cache, one report."""
    return f"{shrink_command((cache,))}; {guest_path(TOOL)} '^{cache}$'"


def own_cache_rows(rows: Rows, model: Model, test: str, text: str | None, cache, n: int,
                   flags: str) -> SlabinfoReport | None:
    """slabinfo's report on a cache holding exactly our ``n`` objects (after a shrink): every
    figure is the model's.  ``cache`` is the model's KmemCacheInfo."""
    report = parse_report(text) if text else None

    def seen(field: str) -> int | None:
        return None if report is None else getattr(report, field)

    layout, objs = cache.layout, cache.objects_per_slab
    slab_bytes = model.PAGE_SIZE << cache.order
    counts = model.slabinfo_after_alloc(n, cache.size, shrunk=True, flags=flags)
    slabs = counts.value.num_slabs
    lo, hi = counts.bound or (slabs, slabs)
    pad = slab_bytes - objs * cache.size
    rows.exact(test, "slabinfo tool: Object", layout.object_size, seen("object_size"), R_TOOL)
    rows.exact(test, "slabinfo tool: SlabObj (s->size)", cache.size, seen("slot_size"), R_TOOL)
    rows.exact(test, "slabinfo tool: SlabSiz", slab_bytes, seen("slab_bytes"), R_TOOL,
               f"PAGE_SIZE << order {cache.order}")
    rows.exact(test, "slabinfo tool: objects per slab", objs, seen("objects_per_slab"), R_TOOL)
    rows.exact(test, "slabinfo tool: objects in use", counts.value.active_objs, seen("objects"),
               counts.rule, "after kmem_cache_shrink()")
    rows.exact(test, "slabinfo tool: Loss per object (SlabObj - Object)",
               cache.size - layout.object_size, seen("loss_per_object"), R_TOOL)
    rows.exact(test, "slabinfo tool: Lalig (per-object loss x objects)",
               (cache.size - layout.object_size) * n, seen("lalig_bytes"), R_TOOL)
    rows.exact(test, "slabinfo tool: padding per slab", pad,
               None if report is None else report.padding_per_slab, R_TOOL,
               f"{slab_bytes} - {objs} x {cache.size}")
    rows.bounded(test, "slabinfo tool: slabs", slabs, lo, hi, seen("slabs"), counts.rule,
                 "after the shrink only slabs holding live objects remain")
    if lo == hi:        # the slab count is exact: so are the totals
        rows.exact(test, "slabinfo tool: Lpadd (padding x slabs)", pad * slabs,
                   seen("lpadd_bytes"), R_TOOL)
        rows.exact(test, "slabinfo tool: Loss (slabs x SlabSiz - objects x Object)",
                   slabs * slab_bytes - n * layout.object_size, seen("loss_bytes"), R_TOOL,
                   "free slots, per-object loss and slab padding")
    return report


__all__ = ["R_TOOL", "TOOL", "own_cache_rows", "report_command"]
