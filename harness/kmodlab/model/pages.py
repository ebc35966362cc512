"""Page orders and the buddy allocator's free lists (/proc/buddyinfo).

Rules: include/asm-generic/getorder.h:get_order(); mm/page_alloc.c:__rmqueue_smallest() and
expand() for allocation, __free_one_page() for the merge on free, pcp_allowed_order() for which
orders go through the per-cpu lists (and are therefore not visible in buddyinfo right away).
"""

from __future__ import annotations

from collections.abc import Sequence

from kmodlab.model.errors import ModelError
from kmodlab.model.params import KernelParams


def get_order(size: int, page_shift: int = 12) -> int:
    """include/asm-generic/getorder.h:get_order(): smallest order whose block holds ``size``."""
    if size <= 0:
        raise ModelError(f"get_order({size}) is undefined in the kernel")
    return ((size - 1) >> page_shift).bit_length()


def pcp_allowed_order(p: KernelParams, order: int) -> bool:
    """mm/page_alloc.c:pcp_allowed_order(): orders <= PAGE_ALLOC_COSTLY_ORDER, plus the THP
    order (6.1 pageblock_order, 6.12 HPAGE_PMD_ORDER), use the per-cpu lists; 5.10's rmqueue()
    uses them for order 0 only."""
    return order <= p.pcp_max_order or (p.pcp_huge_order is not None
                                        and order == p.pcp_huge_order)


def zone_batchsize(managed_pages: int, page_shift: int = 12) -> int:
    """mm/page_alloc.c:zone_batchsize() (6.1 and 6.12): ~0.1% of the zone or 1 MiB, quartered,
    then clamped to 2^n - 1.  zone_set_pageset_high_and_batch() stores max(1, this) as
    pcp->batch (what /proc/zoneinfo prints as "batch:")."""
    if managed_pages < 0:
        raise ModelError(f"managed pages must be >= 0, not {managed_pages}")
    batch = min(managed_pages >> 10, (1 << 20) >> page_shift) // 4
    batch = max(batch, 1)
    batch = 1 << ((batch + batch // 2).bit_length() - 1)   # rounddown_pow_of_two()
    return batch - 1


def pcp_batch(managed_pages: int, page_shift: int = 12) -> int:
    """pcp->batch of a zone: max(1, zone_batchsize()) (zone_set_pageset_high_and_batch())."""
    return max(1, zone_batchsize(managed_pages, page_shift))


def pcp_refill_blocks(p: KernelParams, order: int, batch: int | None = None) -> int:
    """Blocks one per-cpu list refill takes from the buddy lists (rmqueue_bulk count):
    6.1 __rmqueue_pcplist() ``max(batch >> order, 2)``; 6.12 nr_pcp_alloc() scales the order-0
    batch by up to ``1 << PCP_BATCH_SCALE_MAX``.  A batch of 1 (tiny zones such as x86's
    16 MiB DMA, verified in /proc/zoneinfo) is not scaled: one block per refill.
    ``batch`` is the zone's pcp->batch; the table's value for >= 1 GiB zones by default."""
    base = p.pcp_batch if batch is None else batch
    if base <= 1:
        return 1
    scaled = base << p.pcp_order0_scale if order == 0 else base
    return max(scaled >> order, 2)


def rmqueue_smallest(counts: list[int], order: int) -> int | None:
    """mm/page_alloc.c:__rmqueue_smallest() + expand(): take the first free block of order
    k >= order; the split leaves one free buddy at each order order..k-1.  Mutates ``counts``;
    returns k, or None when no block is large enough."""
    for k in range(order, len(counts)):
        if counts[k] > 0:
            counts[k] -= 1
            for j in range(order, k):
                counts[j] += 1
            return k
    return None


def simulate_alloc(counts: Sequence[int], order: int, count: int) -> tuple[tuple[int, ...], int]:
    """Counts after ``count`` buddy allocations of ``order``; also how many succeeded."""
    state = list(counts)
    done = 0
    for _ in range(count):
        if rmqueue_smallest(state, order) is None:
            break
        done += 1
    return tuple(state), done


def free_pages(counts: Sequence[int]) -> int:
    return sum(c << o for o, c in enumerate(counts))


# mm/page_alloc.c:fallbacks[]: the free lists __rmqueue_fallback() / __rmqueue_claim() try when
# the request's own migratetype has no block large enough (same table in 6.1 and 6.12).
FALLBACKS = {
    "UNMOVABLE": ("RECLAIMABLE", "MOVABLE"),
    "MOVABLE": ("RECLAIMABLE", "UNMOVABLE"),
    "RECLAIMABLE": ("UNMOVABLE", "MOVABLE"),
}


def rmqueue_typed(p: KernelParams, counts: list[int], typed: dict[str, list[int]], order: int,
                  migratetype: str) -> tuple[int | None, str]:
    """One buddy allocation with per-migratetype free lists; mutates both.

    mm/page_alloc.c:__rmqueue_smallest() takes the first block of order >= ``order`` on the
    request's own migratetype list and expand()s it.  When that list has none,
    __rmqueue_fallback() (6.1) / __rmqueue_claim() (6.12) walk the orders from the largest
    down and take the first block on a fallbacks[] list; a block of pageblock_order or more is
    claimed whole (change_pageblock_range() / try_to_steal_block()) and then split like the
    smallest one.  Returns (order of the block taken, "smallest" | "claim"), or (None, why) when
    the counts cannot tell (a smaller fallback block moves a whole pageblock's free pages, so
    which block gets split depends on pfns the counts do not show).
    """
    own = typed[migratetype]
    for k in range(order, len(counts)):
        if own[k] > 0:
            _split(counts, typed, migratetype, order, k, migratetype)
            return k, "smallest"
    if migratetype == "MOVABLE":
        return None, "MOVABLE requests may steal single pages (find_smallest / __rmqueue_steal)"
    for k in range(len(counts) - 1, order - 1, -1):
        donor = next((mt for mt in FALLBACKS[migratetype] if typed[mt][k] > 0), None)
        if donor is None:
            continue
        if k < p.pageblock_order:
            return None, (f"the largest fallback block is order {k} < pageblock_order "
                          f"{p.pageblock_order}: its whole pageblock changes type first")
        _split(counts, typed, donor, order, k, migratetype)
        return k, "claim"
    return None, "no free block of order >= the request in any fallback list"


def _split(counts: list[int], typed: dict[str, list[int]], donor: str, order: int, k: int,
           into: str) -> None:
    counts[k] -= 1
    typed[donor][k] -= 1
    for j in range(order, k):
        counts[j] += 1
        typed[into][j] += 1
