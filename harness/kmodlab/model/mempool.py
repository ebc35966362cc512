"""mempool: the reserve a pool allocates up front, and what alloc/free do to it.

Rules: mm/mempool.c:mempool_create_node() (kzalloc_node(sizeof(mempool_t))),
mempool_init_node() (kmalloc_array_node(min_nr, sizeof(void *)) for the element array, then
min_nr calls of pool->alloc), mempool_alloc() (tries the allocator first, the reserve only when
it fails), mempool_free() (refills the reserve below min_nr, else frees).
"""

from __future__ import annotations

from dataclasses import dataclass

from kmodlab.model.errors import ModelError
from kmodlab.model.kmalloc import kmalloc_cache_name
from kmodlab.model.params import KernelParams

KINDS = ("slab", "kmalloc", "page")


@dataclass(frozen=True)
class MempoolPlan:
    min_nr: int
    kind: str                         # "slab" (mempool_create_slab_pool), "kmalloc", "page"
    pool_cache: str | None            # kmalloc cache of the mempool_t itself
    elements_cache: str | None        # kmalloc cache of the element pointer array
    element_backing: str              # cache name / "order-N pages" the elements come from
    preallocated: int                 # elements allocated at create time

    @property
    def kmalloc_objects(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cache in (self.pool_cache, self.elements_cache):
            if cache:
                out[cache] = out.get(cache, 0) + 1
        if self.kind == "kmalloc":
            out[self.element_backing] = out.get(self.element_backing, 0) + self.preallocated
        return out


def mempool_plan(p: KernelParams, min_nr: int, kind: str = "kmalloc", *,
                 element_size: int | None = None, cache_name: str | None = None,
                 order: int = 0) -> MempoolPlan:
    if kind not in KINDS:
        raise ModelError(f"mempool kind must be one of {KINDS}, not {kind!r}")
    if min_nr < 0:
        raise ModelError(f"min_nr must be >= 0, not {min_nr}")
    if kind == "kmalloc":
        if not element_size:
            raise ModelError("a kmalloc pool needs element_size (mempool_create_kmalloc_pool)")
        backing = kmalloc_cache_name(p, element_size)
        if backing is None:
            raise ModelError(f"kmalloc({element_size}) has no cache; use kind='page'")
    elif kind == "slab":
        backing = cache_name or "<the pool's kmem_cache>"
    else:
        if not 0 <= order <= p.max_page_order:
            raise ModelError(f"page pool order must be 0..{p.max_page_order}")
        backing = f"order-{order} pages"
    return MempoolPlan(min_nr, kind, kmalloc_cache_name(p, p.mempool_t_size),
                       kmalloc_cache_name(p, min_nr * p.pointer_size), backing, min_nr)


@dataclass(frozen=True)
class MempoolUse:
    """After ``allocs`` mempool_alloc() calls and ``frees`` mempool_free() calls."""

    reserve: int             # pool->curr_nr
    from_allocator: int      # elements that came from pool->alloc (not the reserve)
    returned_to_allocator: int


def mempool_use(min_nr: int, allocs: int, frees: int = 0, allocator_fails: bool = False
                ) -> MempoolUse:
    """With a working allocator every mempool_alloc() is a plain allocation and the reserve
    stays full, so frees go straight back to the allocator.  If the allocator fails, allocs
    drain the reserve first and frees refill it up to min_nr."""
    if frees > allocs:
        raise ModelError("cannot free more elements than were allocated")
    if not allocator_fails:
        return MempoolUse(min_nr, allocs, frees)
    from_reserve = min(allocs, min_nr)
    reserve = min_nr - from_reserve
    refill = min(frees, min_nr - reserve)
    return MempoolUse(reserve + refill, 0, frees - refill)


@dataclass(frozen=True)
class MempoolResize:
    """The pool after mempool_resize(pool, new_min_nr)."""

    min_nr: int
    curr_nr: int
    elements_cache: str | None       # kmalloc cache of the element array afterwards
    reallocated: bool                # a new element array was kmalloc'ed


def mempool_resize(p: KernelParams, min_nr: int, curr_nr: int, new_min_nr: int,
                   elements_cache: str | None) -> MempoolResize:
    """mm/mempool.c:mempool_resize() (same in 6.1 and 6.12): shrinking frees reserve elements
    down to new_min_nr and keeps the array; growing kmalloc_array()s a new array of new_min_nr
    pointers and fills the reserve up to new_min_nr with pool->alloc (which succeeds in an idle
    guest)."""
    if new_min_nr <= 0:
        raise ModelError("mempool_resize() BUG_ONs on new_min_nr <= 0")
    if new_min_nr <= min_nr:
        return MempoolResize(new_min_nr, min(curr_nr, new_min_nr), elements_cache, False)
    return MempoolResize(new_min_nr, new_min_nr,
                         kmalloc_cache_name(p, new_min_nr * p.pointer_size), True)
