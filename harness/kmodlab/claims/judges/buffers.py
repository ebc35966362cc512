"""Claims about large buffers: contiguous blocks against vmalloc() in fragmented memory
(kmodlab's kml_bigalloc module, after its kml_fragment tool, and again after compaction)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import (
    Finding,
    Judge,
    NotMeasured,
    int_value,
    register,
    size_text,
)
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget

R_LARGE = ("mm/page_alloc.c:__rmqueue_smallest(): 2^order pages come only from a free block of "
           "that order or larger; mm/vmalloc.c:__vmalloc_area_node(): vmalloc() maps single "
           "pages; mm/compaction.c: compaction migrates movable pages to rebuild free blocks")


@register
class LargeContiguousProneToFailure(Judge):
    """"Large contiguous allocations are prone to failure; vmalloc() is not"."""

    name = "large_contiguous_prone_to_failure"

    def model(self, target: ModelTarget, *, order: int, **_: Any) -> Finding:
        size = target.model.PAGE_SIZE << order
        return Finding("true", f"order {order} ({size_text(size)})",
                       f"yes: an order-{order} block ({size_text(size)}) needs that many free pages "
                       "in one aligned block; with free memory scattered in single pages it "
                       "fails however much is free, while vmalloc() of the same size succeeds; "
                       "compaction can rebuild blocks from movable pages", R_LARGE,
                       short="yes: a high order needs one free block; vmalloc() needs pages")

    def measured(self, target: ModelTarget, obs: Observations, *, fragmented: str,
                 compacted: str, **_: Any) -> Finding | None:
        frag_blocks = obs.values(fragmented, "blocks")
        frag_ok = int_value(obs.values(fragmented, "contiguous"), "ok")
        frag_vmalloc = int_value(obs.values(fragmented, "vmalloc"), "ok")
        comp_blocks = obs.values(compacted, "blocks")
        comp_ok = int_value(obs.values(compacted, "contiguous"), "ok")
        free, largest = int_value(frag_blocks, "free_pages"), int_value(frag_blocks, "largest")
        order = int_value(frag_blocks, "order")
        comp_large = int_value(comp_blocks, "large_blocks")
        if None in (frag_ok, frag_vmalloc, free, largest, order, comp_ok, comp_large):
            return None
        assert free is not None and largest is not None and order is not None
        assert comp_large is not None
        if not (largest < order and free >= 1 << order):
            # the attempt tested nothing: no measurement, rather than a "false"
            raise NotMeasured(f"kml_fragment left a free block of order {largest} (order "
                              f"{order} asked), in a zone its fill could not reach: the "
                              "attempt did not meet fragmented memory")
        # the buddy allocator's rule: no free block of `order` <=> the order-N NOWAIT attempt
        # fails (the watermark passes: plenty is free); after compaction, the other way round
        agrees = frag_ok == 0 and comp_ok == (1 if comp_large else 0)
        ok = frag_ok == 0 and frag_vmalloc == 1
        free_bytes = free * target.model.PAGE_SIZE
        return Finding("true" if ok else "false",
                       f"{size_text(free_bytes)} free, largest order {largest}",
                       f"with {size_text(free_bytes)} free but no free block above order "
                       f"{largest}, the order-{order} block {'failed' if not frag_ok else 'came'}"
                       f" and vmalloc() of the same size {'worked' if frag_vmalloc else 'failed'}"
                       f"; after compaction {comp_large} block(s) of order {order} or more were "
                       f"free and the block {'came' if comp_ok else 'still failed'}"
                       + ("" if comp_large else " (compaction rebuilt no block here)"),
                       f"{fragmented}/blocks, contiguous, vmalloc + {compacted}/blocks, contiguous",
                       agrees)
