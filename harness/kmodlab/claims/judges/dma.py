"""Claims about coherent DMA buffers: where they come from and how many pages they take (the
dma family's buffers for the guest's ivshmem)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, int_value, register, size_text
from kmodlab.claims.observations import MEMORY_TEST, Observations
from kmodlab.claims.target import ModelTarget

CMA_SLACK_PAGES = 16               # movable allocations may fall back to CMA meanwhile


@register
class DmaPowerOfTwo(Judge):
    """"dma_alloc_coherent() hands out a power-of-two block of pages"."""

    name = "dma_power_of_two"

    def model(self, target: ModelTarget, *, size: int, **_: Any) -> Finding:
        m = target.model
        plan = m.dma_alloc_coherent(size)
        w = plan.value
        block = 1 << w.order
        if w.from_cma:
            return Finding("false", f"{w.pages} pages (CMA)",
                           f"no: above one page dma_alloc_coherent({size}) takes exactly "
                           f"{w.pages} pages from the CMA area (not {block}), aligned to "
                           f"{w.align_pages} pages", plan.rule,
                           short="not with CMA: exact pages from the CMA area above one page; "
                                 "a power-of-two buddy block without CMA")
        return Finding("true", f"{block} pages (order {w.order})",
                       f"yes: without a CMA area dma_alloc_coherent({size}) takes an order-"
                       f"{w.order} block, {block} pages ({size_text(block * m.PAGE_SIZE)}) "
                       f"for {size_text(size)}", plan.rule,
                       short="yes without CMA (a buddy block of 2^order pages); with CMA, exact "
                             "pages above one page")

    def measured(self, target: ModelTarget, obs: Observations, *, size: int, probe: str,
                 **_: Any) -> Finding | None:
        v = obs.values(probe, f"dma_alloc_coherent_{size}")
        if v is None or int_value(v, "allocated") != 1:
            return None
        m = target.model
        page_kb = m.PAGE_SIZE // 1024
        plan = m.dma_alloc_coherent(size).value
        order = plan.order
        exact_pages = -(-size // m.PAGE_SIZE)
        cma_kb = int_value(obs.values(probe, MEMORY_TEST), "cma_kb") or 0
        align = int_value(v, "pfn_align") or 0
        if abs(cma_kb - exact_pages * page_kb) <= CMA_SLACK_PAGES * page_kb:
            return Finding("false", f"{exact_pages} pages (CMA)",
                           f"CmaFree fell by {cma_kb} kB across insmod: {exact_pages} pages, "
                           f"not {1 << order}", f"{probe}/{MEMORY_TEST} cma_kb", plan.from_cma)
        if abs(cma_kb) <= CMA_SLACK_PAGES * page_kb and align >= 1 << order:
            return Finding("true", f"buddy, aligned to {align} pages",
                           f"nothing from CMA; the buffer starts on a multiple of {align} pages, "
                           f"as an order-{order} block does (kmodlab check dma counts its "
                           f"{1 << order} pages)", f"{probe}/dma_alloc_coherent_{size} "
                           "pfn_align + cma_kb", not plan.from_cma)
        return Finding("depends", f"CMA {cma_kb} kB, aligned to {align}",
                       f"CmaFree fell by {cma_kb} kB and the buffer is aligned to {align} pages: "
                       "neither an exact CMA range nor a buddy block", f"{probe}", False)
