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
    order (6.1 pageblock_order, 6.12 HPAGE_PMD_ORDER), use the per-cpu lists."""
    return order <= p.costly_order or (p.pcp_huge_order is not None and order == p.pcp_huge_order)


def pcp_refill_blocks(p: KernelParams, order: int) -> int:
    """Blocks one per-cpu list refill takes from the buddy lists (rmqueue_bulk count):
    6.1 __rmqueue_pcplist() ``max(batch >> order, 2)``; 6.12 nr_pcp_alloc() scales the order-0
    batch by up to ``1 << PCP_BATCH_SCALE_MAX``."""
    batch = p.pcp_batch << p.pcp_order0_scale if order == 0 else p.pcp_batch
    return max(batch >> order, 2)


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
