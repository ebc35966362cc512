"""Rows for ``vmstat -m`` (procps, in every guest image): its columns against the model.

The command shrinks the module's cache first, so Num is exactly the objects held (as in
/proc/slabinfo after a shrink).  vmstat's "Pages" column is objperslab (procps
src/vmstat.c:slabformat() prints SLAB_OBJ_PER_SLAB): a row says so in its name.
"""

from __future__ import annotations

from kmodlab.check.rows import Rows
from kmodlab.model import Model
from kmodlab.observe.vmstat_slabs import VmstatSlabs, parse_vmstat_slabs
from kmodlab.phases import shrink_command

R_VMSTAT = ("procps src/vmstat.c:slabformat(): Num, Total, Size, Pages = active_objs, num_objs, "
            "objsize, objperslab of /proc/slabinfo (mm/slab_common.c:cache_show())")
R_GEOMETRY = "mm/slub.c:calculate_sizes() (s->size) + calc_slab_order() (objects per slab)"


def vmstat_command(cache: str) -> str:
    """Shrink ``cache`` (only live objects are active), then procps' slab report."""
    return f"{shrink_command((cache,))}; vmstat -m"


def own_cache_rows(rows: Rows, model: Model, test: str, text: str | None, name: str, cache,
                   n: int, flags: str) -> VmstatSlabs | None:
    """vmstat's row of cache ``name`` holding exactly our ``n`` objects after a shrink;
    ``cache`` is the model's KmemCacheInfo.  Returns the whole table (None without output)."""
    table = parse_vmstat_slabs(text) if text else None
    row = None if table is None else table.row_for(name)
    objs = cache.objects_per_slab
    counts = model.slabinfo_after_alloc(n, cache.size, shrunk=True, flags=flags)
    slabs = counts.value.num_slabs
    lo, hi = counts.bound or (slabs, slabs)
    rows.exact(test, "vmstat -m: Size (s->size)", cache.size, row and row.size, R_VMSTAT)
    rows.exact(test, "vmstat -m: Pages (objects per slab, not pages)", objs,
               row and row.pages, R_VMSTAT, "the column vmstat(8) calls pages with an active "
               "object is objperslab")
    rows.exact(test, "vmstat -m: Num (active objects)", counts.value.active_objs,
               row and row.num, counts.rule, "after kmem_cache_shrink()")
    rows.bounded(test, "vmstat -m: Total (slabs x objects per slab)", slabs * objs, lo * objs,
                 hi * objs, row and row.total, counts.rule,
                 "after the shrink only slabs holding live objects remain")
    return table


def kmalloc_rows(rows: Rows, model: Model, table: VmstatSlabs | None) -> None:
    """Size and Pages of every kmalloc-<n> cache the model says the kernel creates."""
    for name, want in sorted(model.kmalloc_caches().value.items(),
                             key=lambda kv: kv[1].size):
        if want.type != "normal":
            continue
        row = None if table is None else table.row_for(name)
        test = f"vmstat -m {name}"
        rows.exact(test, "Size (s->size)", want.size, row and row.size, R_GEOMETRY)
        rows.exact(test, "Pages (objects per slab)", want.geometry.objects, row and row.pages,
                   R_GEOMETRY, f"{model.PAGE_SIZE << want.geometry.order} bytes / {want.size}")


__all__ = ["R_VMSTAT", "kmalloc_rows", "own_cache_rows", "vmstat_command"]
