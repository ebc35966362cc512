"""Claims about the page allocator: get_zeroed_page(), __get_free_pages(order), and whether
freshly allocated memory still holds old content (init_on_alloc)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, int_value, register
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.model import tables


@register
class ZeroedPage(Judge):
    """"get_zeroed_page() returns zeroed memory"."""

    name = "zeroed_page"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        return Finding("true", "zeroed", "get_zeroed_page() is __get_free_page(gfp | "
                       "__GFP_ZERO): the page is cleared whatever it held before",
                       "mm/page_alloc.c:get_zeroed_page() + post_alloc_hook()", short="yes")

    def measured(self, target: ModelTarget, obs: Observations, **_: Any) -> Finding | None:
        fresh = int_value(obs.values("pages_orders", "get_zeroed_page"), "zeroed")
        reuse = obs.values("claims_module", "reuse_zeroed_page")
        reused = int_value(reuse, "zeroed")
        if fresh is None and reused is None:
            return None
        same = int_value(reuse, "same_pfn")
        ok = all(v == 1 for v in (fresh, reused) if v is not None)
        parts = []
        if fresh is not None:
            parts.append(f"fresh page zeroed={fresh}")
        if reused is not None:
            parts.append(f"page dirtied with 0xa5, freed and handed out again "
                         f"(same pfn: {'yes' if same else 'no'}) zeroed={reused}")
        return Finding("true" if ok else "false", "zeroed" if ok else "NOT zeroed",
                       "; ".join(parts),
                       "pages_orders/get_zeroed_page + claims_module/reuse_zeroed_page", ok)


@register
class FreePagesOrder(Judge):
    """"__get_free_pages(order) returns 2^order contiguous pages"."""

    name = "free_pages_order"

    def model(self, target: ModelTarget, *, max_order: int, **_: Any) -> Finding:
        m = target.model
        top = min(max_order, m.params.max_page_order)
        counts = [m.pages_for_order(o).value for o in range(top + 1)]
        assert counts == [1 << o for o in range(top + 1)]
        return Finding("true", f"orders 0..{m.params.max_page_order}",
                       f"2^order pages, physically contiguous and aligned to their size (a "
                       f"buddy block), for orders 0..{m.params.max_page_order} "
                       f"({m.params.max_order_name}); without __GFP_COMP it is not a compound "
                       "page, so it must be freed with the same order",
                       f"{m.pages_for_order(0).rule} + {m.block_alignment(0).rule}",
                       short=f"yes, orders 0..{m.params.max_page_order}, aligned to their size")

    def measured(self, target: ModelTarget, obs: Observations, *, max_order: int,
                 **_: Any) -> Finding | None:
        good, failed, bad = [], [], []
        for order in range(max_order + 1):
            v = obs.values("pages_orders", f"get_free_pages_kernel_o{order}")
            if v is None:
                continue
            if v.get("allocated") != 1:
                failed.append(order)
            elif v.get("contiguous") == 1 and v.get("aligned") == 1 and \
                    v.get("pages") == 1 << order:
                good.append(order)
            else:
                bad.append(order)
        if not (good or bad):
            return None
        answer = (f"orders {good[0]}..{good[-1]}: 2^order pages, contiguous and aligned"
                  if good and not bad else f"not contiguous/aligned at orders {bad}")
        if failed:
            answer += f"; allocation failed at orders {failed}"
        return Finding("false" if bad else "true", f"{len(good)} orders ok", answer,
                       "pages_orders/get_free_pages_kernel_o<n>", not bad)


@register
class NotCleared(Judge):
    """"kmalloc and __get_free_pages do not clear memory"."""

    name = "not_cleared"

    @staticmethod
    def init_on_alloc_default(target: ModelTarget) -> bool:
        kconfig = (target.kernel.kconfig if target.kernel is not None
                   else tables.DEBIAN_KCONFIG[(target.arch, target.series)])
        return kconfig.get("CONFIG_INIT_ON_ALLOC_DEFAULT_ON") == "y"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        rule = ("include/linux/mm.h:want_init_on_alloc() + mm/page_alloc.c:post_alloc_hook() + "
                "mm/slab.h:slab_want_init_on_alloc()")
        if self.init_on_alloc_default(target):
            return Finding("depends", "cleared (init_on_alloc=1)",
                           "the API does not promise zeroes (use kzalloc / __GFP_ZERO), but "
                           "this kernel is built with CONFIG_INIT_ON_ALLOC_DEFAULT_ON=y: "
                           "init_on_alloc=1 clears every page and slab object when it is "
                           "allocated, so old content never shows, unless it boots with "
                           "init_on_alloc=0", rule,
                           short="not promised, but cleared anyway here (init_on_alloc=1)")
        return Finding("true", "old content", "init_on_alloc is off by default: the memory "
                       "holds whatever was there", rule, short="yes: old content remains")

    def measured(self, target: ModelTarget, obs: Observations, **_: Any) -> Finding | None:
        page = obs.values("claims_module", "reuse_page")
        obj = obs.values("claims_module", "reuse_kmalloc")
        if page is None or obj is None:
            return None
        init = int_value(page, "init_on_alloc")
        cleared = [what for what, v in (("page", page), ("kmalloc", obj))
                   if v.get("zeroed") == 1]
        same = page.get("same_pfn") == 1 and obj.get("same_ptr") == 1
        answer = (f"re-allocated {'same' if same else 'other'} memory after filling it with "
                  f"0xa5: page zeroed={page.get('zeroed')}, kmalloc(64) zeroed={obj.get('zeroed')}"
                  f"; want_init_on_alloc(GFP_KERNEL)={init}")
        if obs.facts.get("mem_auto_init"):
            answer += f"; boot log: {obs.facts['mem_auto_init']}"
        verdict = "depends" if cleared else "true" if same else "depends"
        return Finding(verdict, "cleared" if cleared else "old content", answer,
                       "claims_module/reuse_page + reuse_kmalloc",
                       None if init is None else bool(init) == self.init_on_alloc_default(target))
