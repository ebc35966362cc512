"""Claims about GFP masks under memory pressure (kmodlab's kml_pressure module, with 64 MiB of
reclaimable page cache: a file on an ext2 RAM disk).

The module takes single pages with GFP_NOWAIT until one fails, then with GFP_ATOMIC, then one
GFP_NOWAIT without __GFP_NOWARN, then GFP_KERNEL|__GFP_RETRY_MAYFAIL and GFP_KERNEL|
__GFP_NORETRY (with the pages each reclaimed itself: PGSTEAL_DIRECT); per zone it reports the
min watermark, the lowmem reserve, the watermark boost and the free (and free CMA) pages where
each mask stopped.  The watermark floors are :mod:`kmodlab.model.reserves`'.
"""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import (
    Finding,
    Judge,
    NotMeasured,
    count_text,
    int_value,
    register,
)
from kmodlab.claims.measure import REPORTS_TEST
from kmodlab.claims.observations import Observations, Values
from kmodlab.claims.target import ModelTarget
from kmodlab.model import reserves

R_RESERVES = ("mm/page_alloc.c:__zone_watermark_ok(): GFP_ATOMIC's __GFP_HIGH and atomic "
              "context cut the min watermark (min -= min/2, then min -= min/4: "
              "ALLOC_MIN_RESERVE + ALLOC_NON_BLOCK since the 6.3 rework, ALLOC_HIGH + "
              "ALLOC_HARDER in 5.10); GFP_NOWAIT gets no cut")
R_REFILL = ("mm/page_alloc.c:nr_pcp_alloc(): batch << pcp->alloc_factor pages per order-0 "
            "refill after one watermark check (6.12 and 7.2; 6.1 takes pcp->batch)")
R_RECLAIM = ("mm/page_alloc.c:__alloc_pages_slowpath(): without __GFP_DIRECT_RECLAIM "
             "(GFP_NOWAIT, GFP_ATOMIC) it goes to nopage after waking kswapd; GFP_KERNEL "
             "reclaims directly (__alloc_pages_direct_reclaim())")
R_NORETRY = ("mm/page_alloc.c:__alloc_pages_slowpath(): with __GFP_DIRECT_RECLAIM it tries "
             "__alloc_pages_direct_reclaim() (and compaction) first; only then does "
             "__GFP_NORETRY goto nopage instead of retrying")
R_NOWARN = ("mm/page_alloc.c:__alloc_pages_slowpath() nopage: warn_alloc() unless "
            "__GFP_NOWARN (\"page allocation failure: order:0, mode:...\")")


def _zones(obs: Observations, probe: str) -> list[Values]:
    return [v for t, v in sorted(obs.tests(probe).items()) if t.startswith("zone")]


def _atomic_floor(series: str, zone: Values) -> int | None:
    """The free-page count GFP_ATOMIC may not go below in ``zone``: its cut min, plus the
    lowmem reserve and the free CMA pages (unusable for a non-movable mask)."""
    mn, reserve = int_value(zone, "min"), int_value(zone, "lowmem_reserve")
    cma = int_value(zone, "cma_atomic")
    if mn is None or reserve is None or cma is None:
        return None
    return reserves.watermark_floor(series, "GFP_ATOMIC", mn) + reserve + cma


@register
class AtomicUsesReserves(Judge):
    """"The kernel keeps some free pages in reserve for atomic allocations"."""

    name = "gfp_atomic_uses_reserves"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        share = reserves.mask_rule(target.series, "GFP_ATOMIC").reserve_share
        pct = f"{float(share) * 100:g} %"
        if reserves.refill_doubles(target.series):
            return Finding("depends", f"{pct} of min, if left",
                           f"only by luck: the watermark check keeps {pct} of the min "
                           "watermark's pages for GFP_ATOMIC, but a per-CPU list refill after "
                           "one check takes a growing batch (nr_pcp_alloc()), so GFP_NOWAIT "
                           "itself may already have taken the zone below GFP_ATOMIC's floor",
                           R_RESERVES + "; " + R_REFILL,
                           short="by luck: a per-CPU refill may take the reserve first")
        return Finding("true", f"{pct} of min",
                       f"yes: GFP_NOWAIT stops at a zone's min watermark, GFP_ATOMIC may take "
                       f"{pct} of the pages below it (the min watermark halved, then cut by a "
                       "quarter)", R_RESERVES,
                       short=f"yes: GFP_ATOMIC may take {pct} of the min watermark's pages")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str,
                 **_: Any) -> Finding | None:
        atomic = int_value(obs.values(probe, "take_atomic"), "pages")
        zones = _zones(obs, probe)
        if atomic is None or not zones:
            return None
        below, agree, parts = 0, True, []
        for z in zones:
            floor = _atomic_floor(target.series, z)
            free_nowait, free_atomic = int_value(z, "free_nowait"), int_value(z, "free_atomic")
            if floor is None or free_nowait is None or free_atomic is None:
                return None
            if free_nowait <= floor:
                continue                # GFP_ATOMIC could not take anything here either
            below += free_nowait - floor
            agree &= free_atomic <= floor
            parts.append(f"{z.get('name')}: {free_nowait} -> {free_atomic} free pages "
                         f"(floor {floor})")
        # GFP_ATOMIC takes at least every page above its floor where GFP_NOWAIT stopped (and
        # may get more from the per-CPU lists, which it takes after the check)
        agree &= atomic >= below
        # Where refills grow, one run is one draw: what GFP_NOWAIT left is luck (the model's
        # "depends"); the floors still hold, and that is what agreement means there.
        verdict = "depends" if reserves.refill_doubles(target.series) else \
            ("true" if atomic > 0 else "false")
        return Finding(verdict,
                       f"{count_text(atomic, 'page')} after GFP_NOWAIT failed",
                       f"after GFP_NOWAIT failed, GFP_ATOMIC still got {atomic} pages; "
                       + "; ".join(parts), f"{probe}/take_atomic + zoneN", agree)


@register
class AtomicNeverReclaims(Judge):
    """"GFP_ATOMIC never sleeps: it cannot free memory; GFP_KERNEL may, to succeed"."""

    name = "gfp_atomic_never_reclaims"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        ok = not any(reserves.mask_rule(target.series, m).direct_reclaim
                     for m in ("GFP_NOWAIT", "GFP_ATOMIC"))
        return Finding("true" if ok else "false", "no direct reclaim",
                       "yes: GFP_NOWAIT and GFP_ATOMIC only wake kswapd and fail, with page "
                       "cache left that GFP_KERNEL would reclaim and use", R_RECLAIM,
                       short="yes: they fail with reclaimable cache left; GFP_KERNEL reclaims it")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str,
                 **_: Any) -> Finding | None:
        fill = obs.values(probe, "fill_nowait")
        reclaim = obs.values(probe, "reclaim")
        before, mid = int_value(fill, "file_pages_before"), int_value(fill, "file_pages")
        got, asked = int_value(reclaim, "pages"), int_value(reclaim, "asked")
        after = int_value(reclaim, "file_pages")
        if None in (before, mid, got, asked, after):
            return None
        assert before is not None and mid is not None and got is not None and after is not None
        kept = mid >= before          # nothing reclaimed while GFP_NOWAIT/GFP_ATOMIC failed
        ok = kept and got == asked and after < mid
        return Finding("true" if ok else "false",
                       f"{mid - after} cache pages reclaimed for {got}",
                       f"GFP_NOWAIT and GFP_ATOMIC failed with {mid} page-cache pages still "
                       f"there ({before} before); GFP_KERNEL then got {got} of {asked} pages "
                       f"and the page cache fell to {after}",
                       f"{probe}/fill_nowait + reclaim", ok)


@register
class NowarnSilences(Judge):
    """"__GFP_NOWARN suppresses the page allocation failure warning"."""

    name = "gfp_nowarn_silences"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        return Finding("true", "1 warning", "yes: every failure warns (warn_alloc(), rate "
                       "limited) unless the mask has __GFP_NOWARN; here one failing call lacks "
                       "it, so one warning (GFP_NOWAIT itself carries __GFP_NOWARN from 6.12 "
                       "on: include/linux/gfp_types.h)", R_NOWARN,
                       short="yes: only the failing call without __GFP_NOWARN warns")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str,
                 **_: Any) -> Finding | None:
        reports = obs.values(probe, REPORTS_TEST)
        warn = int_value(obs.values(probe, "warn"), "failed")
        if reports is None or warn is None:
            return None
        warnings = int_value(reports, "alloc_failure") or 0
        ok = warn == 1 and warnings == 1
        return Finding("true" if ok else "false", count_text(warnings, "warning"),
                       f"GFP_NOWAIT and GFP_ATOMIC each failed with __GFP_NOWARN, silently; "
                       f"the one GFP_NOWAIT without it {'failed' if warn else 'succeeded'} and "
                       f"the kernel printed {count_text(warnings, 'page allocation failure')}",
                       f"{probe}/warn + the load's kernel log", ok)


@register
class NoretryGivesUpAtOnce(Judge):
    """"__GFP_NORETRY tells the allocator to give up immediately if the requested memory is
    not available"."""

    name = "gfp_noretry_gives_up_at_once"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        rule = reserves.mask_rule(target.series, "GFP_KERNEL|__GFP_NORETRY")
        verdict = "false" if rule.direct_reclaim else "true"
        return Finding(verdict, "one reclaim round",
                       "no: when the free pages are not there, GFP_KERNEL|__GFP_NORETRY first "
                       "reclaims (and compacts) once itself, and gives up only if that did not "
                       "free enough; with reclaimable page cache it succeeds where GFP_NOWAIT "
                       "failed", R_NORETRY,
                       short="no: it reclaims once before giving up")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str,
                 **_: Any) -> Finding | None:
        fill, noretry = obs.values(probe, "fill_nowait"), obs.values(probe, "noretry")
        got, asked = int_value(noretry, "pages"), int_value(noretry, "asked")
        steals = int_value(noretry, "direct_steals")
        before, after = int_value(noretry, "file_pages_before"), int_value(noretry, "file_pages")
        if fill is None or None in (got, asked, steals, before, after):
            return None
        assert got is not None and steals is not None and before is not None \
            and after is not None
        if steals < 0:
            raise NotMeasured("the kernel counts no vm events (CONFIG_VM_EVENT_COUNTERS): "
                              "who reclaimed is unknown")
        if got and not steals:
            raise NotMeasured(f"__GFP_NORETRY got {got} pages without reclaiming any itself: "
                              "memory had become available (kswapd), so giving up was never "
                              "in question")
        verdict = "true" if got == 0 else "false"
        return Finding(verdict, f"{got} pages, {steals} reclaimed",
                       f"with free memory at the watermark (GFP_NOWAIT had failed), "
                       f"GFP_KERNEL|__GFP_NORETRY got {got} of {asked} pages; the task itself "
                       f"reclaimed {steals} pages (PGSTEAL_DIRECT) and the page cache went from "
                       f"{before} to {after} pages",
                       f"{probe}/fill_nowait + noretry", verdict == "false" and steals > 0)
