"""mempool: the reserve (curr_nr) through create, alloc, drain, refill and resize, the caches of
the pool struct and its element array, and the preallocated elements in the backing cache.

The module starves the backing allocator on purpose (mempool_alloc() only touches the reserve
when the allocator fails), so every step has an exact curr_nr in the model
(mm/mempool.c:mempool_alloc()/mempool_free()/mempool_resize()).  The slab-backed pool's cache
(``kml_mempool_elem``) is mergeable; with an element size whose class does not exist yet it
gets a slabinfo line of its own, where the held elements are counted exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

from kmodlab.check.common import lifecycle_rows
from kmodlab.check.kmem_cache import CLASSES, merge_candidates
from kmodlab.check.observation import Observation, Probe, slab_dump, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules.params.mempool import MempoolParams

FAMILY = "mempool"
ELEM_CACHE = "kml_mempool_elem"
PARAMS = ("kinds=slab,kmalloc,page", "min_nr=4", "extra=4", "resize_to=8", "element_size=100",
          "page_order=0")
R_CURR = "mm/mempool.c:mempool_alloc() + mempool_free() (pool->curr_nr)"


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, FAMILY, PARAMS, shrink=(ELEM_CACHE,), before={"classes": CLASSES})]


def _dump_name(obs: Observation, label: str) -> str | None:
    dump = slab_dump(obs.load, label)
    return None if dump is None else (dump.cache or "not slab")


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, MempoolParams)
    merge = model.would_merge(p.element_size, existing=merge_candidates(
        obs.before.get("classes", "")))
    own_line = merge.value.target is None
    for kind in p.kinds:
        _pool(rows, model, obs, p, kind, own_line)
    if "slab" in p.kinds:
        rows.exact("kml_mempool_elem", "merged (no slabinfo line of its own)",
                   "no" if own_line else "yes",
                   None if obs.held is None else
                   ("no" if ELEM_CACHE in obs.held.slabinfo else "yes"),
                   merge.rule, merge.value.reason)
    lifecycle_rows(rows, obs, own_caches=(ELEM_CACHE,) if "slab" in p.kinds and own_line else ())
    return iter(rows.rows)


def _pool(rows: Rows, model: Model, obs: Observation, p: MempoolParams, kind: str,
          own_line: bool) -> None:
    name = f"{kind}_pool"
    load = obs.load
    min_nr, extra = p.min_nr, p.extra
    elem = p.element_size if kind != "page" else None
    plan = model.mempool_create(min_nr, "slab" if kind == "slab" else kind, element_size=elem,
                                cache_name=ELEM_CACHE, order=p.page_order)
    create = values(load, f"{name}_create")
    rows.exact(f"{name}_create", "curr_nr (preallocated)", plan.value.preallocated,
               create.get("curr_nr"), plan.rule)
    rows.exact(f"{name}_create", "mempool_t cache", plan.value.pool_cache,
               _dump_name(obs, f"{name}_struct"),
               "mm/mempool.c:mempool_create_node(): kzalloc_node(sizeof(mempool_t))")
    rows.exact(f"{name}_create", "element array cache", plan.value.elements_cache,
               _dump_name(obs, f"{name}_elements"),
               "mm/mempool.c:mempool_init_node(): kmalloc_array_node(min_nr, sizeof(void *))")

    allocs = min_nr + extra
    use = model.mempool_alloc(min_nr, allocs)
    alloc = values(load, f"{name}_alloc")
    rows.exact(f"{name}_alloc", "allocated", allocs, alloc.get("allocated"), use.rule)
    rows.exact(f"{name}_alloc", "curr_nr (allocator works)", use.value.reserve,
               alloc.get("curr_nr"), use.rule, "the reserve is untouched while pool->alloc works")
    if kind == "slab":
        ksize = model.kmem_cache(p.element_size).value.ksize
        rows.exact(f"{name}_alloc", "element ksize", ksize, alloc.get("ksize"),
                   "mm/slab.h:slab_ksize() of the element cache")
        if own_line:
            rows.exact(f"{name}_alloc", "element cache", ELEM_CACHE,
                       _dump_name(obs, f"{name}_element"),
                       "mm/mempool.c:mempool_alloc_slab(): kmem_cache_alloc(pool_data)")
    elif kind == "kmalloc":
        rows.check(f"{name}_alloc", "element ksize", model.ksize(p.element_size),
                   alloc.get("ksize"))
        rows.check(f"{name}_alloc", "element cache", model.kmalloc_cache_for(p.element_size),
                   _dump_name(obs, f"{name}_element"))

    drained = model.mempool_alloc(min_nr, min_nr, allocator_fails=True)
    drain = values(load, f"{name}_drain")
    rows.exact(f"{name}_drain", "allocated from the reserve", min_nr, drain.get("allocated"),
               drained.rule)
    rows.exact(f"{name}_drain", "curr_nr (allocator starved)", drained.value.reserve,
               drain.get("curr_nr"), drained.rule, "remove_element() serves each request")
    rows.exact(f"{name}_exhausted", "GFP_NOWAIT alloc returns NULL",
               int(drained.value.reserve == 0), values(load, f"{name}_exhausted").get(
                   "returned_null"), R_CURR, "reserve empty, allocator failing, no sleep")

    refilled = model.mempool_alloc(min_nr, min_nr, frees=min_nr, allocator_fails=True)
    refill = values(load, f"{name}_refill")
    rows.exact(f"{name}_refill", "curr_nr (frees refill the reserve)", refilled.value.reserve,
               refill.get("curr_nr"), refilled.rule, "mempool_free(): curr_nr < min_nr -> "
               "add_element()")

    resized = model.mempool_resize(min_nr, refilled.value.reserve, p.resize_to)
    resize = values(load, f"{name}_resize")
    rows.exact(f"{name}_resize", "min_nr", resized.value.min_nr, resize.get("min_nr"),
               resized.rule)
    rows.exact(f"{name}_resize", "curr_nr", resized.value.curr_nr, resize.get("curr_nr"),
               resized.rule)
    rows.exact(f"{name}_resize", "element array cache", resized.value.elements_cache,
               _dump_name(obs, f"{name}_elements_resized"), resized.rule,
               "a new array when growing, the old one when shrinking")
    held = extra + min_nr                     # extra normal elements + the drained reserve ones
    if kind == "slab" and own_line:
        line = obs.held.slabinfo.get(ELEM_CACHE) if obs.held is not None else None
        rows.exact(f"slabinfo {ELEM_CACHE}", "active_objs (shrunk)",
                   resized.value.curr_nr + held, line and line.active_objs,
                   "mm/slub.c:get_slabinfo() after kmem_cache_shrink()",
                   f"reserve {resized.value.curr_nr} + {held} elements the module holds")
    destroy = values(obs.unload, f"{name}_destroy")
    back = model.mempool_alloc(resized.value.min_nr, held, frees=held)
    rows.exact(f"{name}_destroy", "elements freed by the module", held, destroy.get("freed"),
               R_CURR)
    rows.exact(f"{name}_destroy", "curr_nr before mempool_destroy()", back.value.reserve,
               destroy.get("curr_nr"), back.rule, "a full reserve sends frees to pool->free")
