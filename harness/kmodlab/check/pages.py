"""pages: buddy blocks of every order -- 2^order pages, natural alignment, zone -- and what each
allocation and free did to the zone's free lists.

The module reads zone->free_area[] (the counts /proc/buddyinfo prints) and the per-migratetype
list lengths (/proc/pagetypeinfo) under zone->lock right before and after each allocation and
each free, so module loading and other activity never blur a delta.  Orders that bypass the
per-cpu lists (4..8 and 10) are predicted exactly, including which block gets split
(mm/page_alloc.c:__rmqueue_smallest() on the request's migratetype, else the fallback claim of
a whole block); pcp orders (0..3 and 9) are bounded by the refill/drain batch, and the pages
moved between the buddy and per-cpu lists must add up to the block (conservation).

A bracket is exact only if nothing else can run inside it: one CPU and interrupts off (masks
that cannot sleep, and every free).  A GFP_KERNEL allocation may reschedule and another CPU may
allocate; such a bracket is still compared exactly when its pages add up, and reported (not
failed) when they do not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from kmodlab.check.common import lifecycle_rows, populated_zones
from kmodlab.check.observation import Observation, Probe, int_list, named_values, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.model import gfp as model_gfp
from kmodlab.model.pages import free_pages
from kmodlab.modules import gfp as gfp_mod
from kmodlab.modules.params.pages import PagesParams
from kmodlab.observe.zoneinfo import parse_zoneinfo

FAMILY = "pages"
# GFP_NOWAIT may not sleep, so the module measures those blocks with interrupts off: nothing
# else can touch the free lists between its reads.  A GFP_KERNEL allocation may reschedule
# inside (might_sleep()); a bracket the module saw disturbed is reported, not failed.
CONFIGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pages", ("max_order=10", "gfp=GFP_NOWAIT", "apis=get_free_pages,alloc_pages",
               "zeroed_page=true")),
    ("pages/kernel", ("max_order=10", "gfp=GFP_KERNEL", "apis=alloc_pages",
                      "zeroed_page=false")),
    ("pages/dma", ("max_order=10", "gfp=GFP_NOWAIT|GFP_DMA", "apis=alloc_pages",
                   "zeroed_page=false")),
    ("pages/dma32", ("max_order=6", "gfp=GFP_NOWAIT|GFP_DMA32", "apis=alloc_pages",
                     "zeroed_page=false")),
)
MIGRATETYPES = ("UNMOVABLE", "MOVABLE", "RECLAIMABLE")
R_ALIGN = "mm/internal.h:__find_buddy_pfn(): an order-n block is aligned to 2^n pages"
R_CONTIG = "mm/page_alloc.c:expand(): a block is 2^order consecutive pfns"
R_CONSERVE = ("mm/page_alloc.c:rmqueue_bulk()/free_pcppages_bulk(): pages move between the "
              "buddy and per-cpu lists; pcp->count counts pages")
R_FREE = "mm/page_alloc.c:__free_one_page(): the block returns to the buddy lists (merged)"
R_HIGHMEM = ("include/linux/mm.h:page_address() -> mm/highmem.c:page_address(): NULL for a "
             "ZONE_HIGHMEM page nobody kmapped; a low-memory page is in the linear map")


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, name, params, before={"zoneinfo": "cat /proc/zoneinfo"})
            for name, params in CONFIGS if _fits(model, params)]


def _fits(model: Model, params: tuple[str, ...]) -> bool:
    order = next(int(p.split("=")[1]) for p in params if p.startswith("max_order="))
    return order <= model.max_page_order().value


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, PagesParams)
    _constants(rows, model, values(obs.load, "page_constants"))
    zones = populated_zones(obs.baseline)
    managed = {}
    if "zoneinfo" in obs.before:
        info = parse_zoneinfo(obs.before["zoneinfo"])
        managed = {name: z.managed for (node, name), z in info.items() if node == 0}
    batches_seen: dict[str, object] = {}
    for api in p.apis:
        for expr in p.gfp:
            tag = gfp_mod.parse_gfp(expr).tag
            for order in range(p.max_order + 1):
                test = f"{api}_{tag}_o{order}"
                v = values(obs.load, test)
                _block(rows, model, test, order, _zone_expr(api, expr), v, zones)
                _alloc_delta(rows, model, test, order, expr, v, managed)
                _free_delta(rows, model, test, order, named_values(obs.unload, test))
                zone = v.get("alloc_zone")
                if zone is not None and zone not in batches_seen:
                    batches_seen[zone] = v.get("alloc_pcp_batch")
    for zone, batch in batches_seen.items():
        if zone in managed:
            rows.check(f"zone {zone}", "pcp batch", model.zone_pcp_batch(managed[zone]), batch)
    if p.zeroed_page:
        v = values(obs.load, "get_zeroed_page")
        rows.exact("get_zeroed_page", "zone", model.preferred_zone(zones), v.get("zone"),
                   "include/linux/gfp.h:gfp_zone(GFP_KERNEL)")
    lifecycle_rows(rows, obs)
    return iter(rows.rows)


def _constants(rows: Rows, model: Model, v: dict) -> None:
    with rows.grouped("page constants"):
        _page_constants(rows, model, v)


def _page_constants(rows: Rows, model: Model, v: dict) -> None:
    rows.check("page_constants", "PAGE_SIZE", model.constant("PAGE_SIZE"), v.get("PAGE_SIZE"))
    rows.check("page_constants", "largest order", model.max_page_order(), v.get("max_order"))
    rows.check("page_constants", "orders (buddyinfo columns)", model.constant("NR_PAGE_ORDERS"),
               v.get("nr_orders"))


def _zone_expr(api: str, expr: str) -> str:
    """The mask that picks the zone: __get_free_pages() drops __GFP_HIGHMEM (mm/page_alloc.c:
    it must return an address, and a high-memory page has none)."""
    if api != "get_free_pages" or not gfp_mod.parse_gfp(expr).highmem:
        return expr
    flags = model_gfp.parse_gfp(expr) - {"__GFP_HIGHMEM"}
    return " | ".join(sorted(flags)) or "0"


def _block(rows: Rows, model: Model, test: str, order: int, expr: str, v: dict,
           zones: list[str]) -> None:
    rows.check(test, "pages", model.pages_for_order(order), v.get("pages"))
    pfn = v.get("pfn")
    rows.exact(test, "pfn % 2^order", 0, pfn % (1 << order) if isinstance(pfn, int) else None,
               R_ALIGN)
    rows.exact(test, "physically contiguous", 1, v.get("contiguous"), R_CONTIG)
    zone = model.preferred_zone(zones, expr)
    rows.exact(test, "zone", zone, v.get("zone"),
               "include/linux/gfp.h:gfp_zone() + zonelist fallback order")
    high = zone == "HighMem"
    rows.exact(test, "high memory (PageHighMem)", int(high), v.get("highmem"), R_HIGHMEM)
    rows.exact(test, "page_address() set", int(not high), v.get("page_address"), R_HIGHMEM,
               "a high-memory page has no permanent kernel address")
    rows.exact(test, "kmap_local_page() maps it", 1, v.get("kmap_ok"),
               "mm/highmem.c:__kmap_local_page_prot() (page_address() for low memory)")


def _protected(model: Model, expr: str | None) -> bool:
    """A bracket nothing else can enter: one CPU, interrupts off (a mask that cannot sleep, or
    a free).  Anything else -- a GFP_KERNEL allocation may reschedule, another CPU may
    allocate -- is judged by whether its pages add up (:func:`_disturbed`)."""
    return model.ncpus == 1 and (expr is None or not gfp_mod.parse_gfp(expr).may_sleep)


def _disturbed(model: Model, order: int, pages: int, before: tuple[int, ...],
               after: tuple[int, ...], v: dict, what: str) -> str:
    """Why an unprotected bracket did not see this block alone ("" when it did): the pages
    leaving the buddy and pcp lists must be the block's, and the pcp lists may only have given
    the block (pcp orders, perhaps after a refill) or stayed as they were (buddy orders)."""
    pb, pa = v.get(f"{what}_pcp_count_before"), v.get(f"{what}_pcp_count_after")
    if not isinstance(pb, int) or not isinstance(pa, int):
        return ""
    moved = (free_pages(after) - free_pages(before)) + (pa - pb)
    if moved != pages:
        return (f"{moved:+d} pages moved in or out instead of {pages:+d}: something else "
                "allocated or freed pages inside the bracket")
    change = pa - pb
    if what == "alloc" and not model.is_pcp_order(order) and change:
        return f"the pcp lists changed by {change} pages during a buddy-order allocation"
    if what == "alloc" and model.is_pcp_order(order) and change < -(1 << order):
        return f"the pcp lists lost {-change} pages: a drain ran inside the bracket"
    return ""


def _alloc_delta(rows: Rows, model: Model, test: str, order: int, expr: str, v: dict,
                 managed: dict[str, int]) -> None:
    before, after = int_list(v.get("alloc_free_before")), int_list(v.get("alloc_free_after"))
    zone = v.get("alloc_zone")
    if before is None or after is None:
        rows.exact(test, "buddy free lists after alloc", "(module's counts)", None,
                   "mm/page_alloc.c", "the module printed no free-list counts")
        return
    typed = {mt: int_list(v.get(f"alloc_{mt.lower()}_before")) for mt in MIGRATETYPES}
    protected = _protected(model, expr)
    disturbed = "" if protected else \
        _disturbed(model, order, -(1 << order), before, after, v, "alloc")
    if model.is_pcp_order(order):
        batch = model.zone_pcp_batch(managed[zone]).value if zone in managed else None
        pred = model.buddy_alloc(before, order, pcp_batch=batch)
        rows.check(test, "buddy-free pages after alloc (pcp order)", pred,
                   free_pages(after), informational=bool(disturbed))
    else:
        pred = model.buddy_alloc(before, order, zone=zone, gfp_flags=expr,
                                 migratetype_counts={mt: c for mt, c in typed.items() if c})
        quantity = "buddy free lists after alloc" if pred.exact else \
            "buddy-free pages after alloc"
        rows.check(test, quantity, pred, after if pred.exact else free_pages(after),
                   informational=bool(disturbed))
    if disturbed:
        rows.rows[-1] = replace(rows.rows[-1], reason=disturbed)
    _conserved(rows, test, "alloc", -(1 << order), before, after, v, protected)


def _free_delta(rows: Rows, model: Model, test: str, order: int, v: dict) -> None:
    before, after = int_list(v.get("free_free_before")), int_list(v.get("free_free_after"))
    if before is None or after is None:
        rows.exact(test, "buddy-free pages after free", "(module's counts)", None, R_FREE,
                   "the module printed no free-list counts at unload")
        return
    protected = _protected(model, None)
    disturbed = "" if protected else \
        _disturbed(model, order, 1 << order, before, after, v, "free")
    if model.is_pcp_order(order):
        pcp = v.get("free_pcp_count_before")
        pred = model.buddy_free(before, order, pcp_pages=pcp if isinstance(pcp, int) else 0)
        rows.check(test, "buddy-free pages after free (pcp order)", pred, free_pages(after),
                   informational=bool(disturbed))
    else:
        rows.exact(test, "buddy-free pages after free", free_pages(before) + (1 << order),
                   free_pages(after), R_FREE, disturbed or
                   f"+{1 << order} pages; merging changes only orders",
                   informational=bool(disturbed))
    _conserved(rows, test, "free", 1 << order, before, after, v, protected)


def _conserved(rows: Rows, test: str, what: str, pages: int, before: tuple[int, ...],
               after: tuple[int, ...], v: dict, protected: bool) -> None:
    """Pages leaving (alloc) or entering (free) the zone = Δbuddy-free + Δpcp count (all
    CPUs).  Exact in a protected bracket; elsewhere it is what tells a disturbed bracket, so
    it is shown for information."""
    pb, pa = v.get(f"{what}_pcp_count_before"), v.get(f"{what}_pcp_count_after")
    observed = None
    if isinstance(pb, int) and isinstance(pa, int):
        observed = (free_pages(after) - free_pages(before)) + (pa - pb)
    rows.exact(test, f"Δ(buddy + pcp pages) on {what}", pages, observed, R_CONSERVE,
               "refills and drains only move pages between the two"
               + ("" if protected else "; unprotected bracket (may sleep, or SMP)"),
               informational=not protected)
