"""How far below a zone's min watermark an order-0 allocation may go, per GFP mask and series.

Read in Debian's trees: linux-source-5.10 5.10.262-1, linux-source-6.1 6.1.192-3,
linux-source-6.12 6.12.95-1~bpo12+1 (the 6.12.118 headers agree: gfp_types.h, struct zone) and
linux-source-7.2 7.2.13-1.  Functions are in mm/page_alloc.c unless said otherwise.

The check.  __zone_watermark_ok() starts from ``long min = mark`` and fails when
``free_pages - __zone_watermark_unusable_free() <= min + z->lowmem_reserve[highest_zoneidx]``,
having first cut ``min`` in C integer arithmetic (non-negative, so ``//`` here):

* 5.10: ``if (alloc_flags & ALLOC_HIGH) min -= min / 2;`` then, for ALLOC_HARDER or ALLOC_OOM,
  ``min -= min / 2`` (ALLOC_OOM) or else ``min -= min / 4``.  mm/internal.h: ALLOC_HARDER 0x10,
  ALLOC_HIGH 0x20 (= __GFP_HIGH).
* 6.1, 6.12, 7.2: only under ``alloc_flags & ALLOC_RESERVES`` (mm/internal.h: ALLOC_NON_BLOCK |
  ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM): ALLOC_MIN_RESERVE cuts ``min -= min / 2``
  and, inside that branch only, ALLOC_NON_BLOCK cuts ``min -= min / 4``; ALLOC_OOM cuts
  ``min -= min / 2`` after.  ALLOC_NON_BLOCK without ALLOC_MIN_RESERVE cuts nothing.  This is
  Mel Gorman's rework of upstream 6.3 ("mm/page_alloc: rename ALLOC_HIGH to ALLOC_MIN_RESERVE"
  ... "mm/page_alloc: explicitly define how __GFP_HIGH non-blocking allocations accesses
  reserves", 1ebbb21811b7, and "mm: discard __GFP_ATOMIC"), and 6.1.y took the alloc-flag
  patches: Debian's 6.1.192 has ALLOC_MIN_RESERVE/ALLOC_NON_BLOCK while include/linux/
  gfp_types.h still defines __GFP_ATOMIC in GFP_ATOMIC.  So the rule is keyed by Debian series,
  not by an upstream release: an upstream v6.1 or v6.2 behaves like 5.10 here.

Unusable free (__zone_watermark_unusable_free(), order 0 so ``(1 << order) - 1`` is 0): the
highatomic reserve is subtracted unless the flags may dip below min (5.10: ALLOC_HARDER |
ALLOC_OOM; 6.1+: ALLOC_RESERVES), counted as z->nr_reserved_highatomic in 5.10 and 6.1 and as
z->nr_free_highatomic in 6.12 and 7.2; and NR_FREE_CMA_PAGES is subtracted without ALLOC_CMA,
which only MIGRATE_MOVABLE requests get (5.10 current_alloc_flags(), 6.1+
gfp_to_alloc_flags_cma()).  None of the masks here is movable, so free CMA pages (Debian arm64's
64 MiB area) never count for them.

Which flags (slow path, __alloc_pages_slowpath() -> gfp_to_alloc_flags(): ALLOC_WMARK_MIN |
ALLOC_CPUSET, plus __GFP_HIGH and __GFP_KSWAPD_RECLAIM copied bit for bit):

* 5.10: include/linux/gfp.h GFP_ATOMIC = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM and
  __GFP_ATOMIC (without __GFP_NOMEMALLOC) gives ALLOC_HARDER: min/2 then min/4 (62.5 %).
  GFP_NOWAIT = __GFP_KSWAPD_RECLAIM gets nothing: its floor is min.
* 6.1+: ``!(gfp_mask & __GFP_DIRECT_RECLAIM)`` (without __GFP_NOMEMALLOC) gives
  ALLOC_NON_BLOCK, __GFP_HIGH gives ALLOC_MIN_RESERVE: GFP_ATOMIC (6.12/7.2 gfp_types.h:
  __GFP_HIGH | __GFP_KSWAPD_RECLAIM) still takes 62.5 %; GFP_NOWAIT gets ALLOC_NON_BLOCK alone:
  floor min, but its check counts the highatomic reserve as free (ALLOC_RESERVES) and
  rmqueue_buddy() hands order-0 ALLOC_NON_BLOCK requests highatomic pages when nothing else is
  left.  6.12 and 7.2 gfp_types.h define GFP_NOWAIT as __GFP_KSWAPD_RECLAIM | __GFP_NOWARN,
  which changes no watermark.
* GFP_KERNEL | __GFP_NORETRY: reclaims directly, no reserve flag; __GFP_NORETRY goes to nopage
  after one reclaim and compaction round, before __alloc_pages_may_oom(): floor min.
* GFP_KERNEL | __GFP_NOFAIL: floor min until the OOM path.  Its deepest *watermark check* is
  the nopage fallback ``__alloc_pages_cpuset_fallback(gfp_mask, order, X, ac)`` with
  X = ALLOC_HARDER in 5.10 (min/4: 25 %) and X = ALLOC_MIN_RESERVE in 6.1+ (min/2: 50 %, the
  6.3 patch "explicitly define what alloc flags deplete min reserves").  Those flags carry no
  ALLOC_CMA.  But __alloc_pages_may_oom() comes first: once it reaches out_of_memory() (order
  <= PAGE_ALLOC_COSTLY_ORDER, no __GFP_RETRY_MAYFAIL/__GFP_THISNODE, highest zone Normal or
  above, storage not suspended, no core dump), a __GFP_NOFAIL request gets
  ``__alloc_pages_cpuset_fallback(..., ALLOC_NO_WATERMARKS)``: get_page_from_freelist() skips
  the check (and lowmem_reserve) entirely.  It does so whether out_of_memory() returned true (a
  victim chosen or already exiting, or no __GFP_FS) or false (only with oom_killer_disabled;
  then WARN_ON_ONCE_GFP fires); a global OOM that finds no killable task panics instead
  (mm/oom_kill.c: out_of_memory(), "System is deadlocked on memory").  The nopage fallback is what NOFAIL requests that skip the OOM killer use (a
  GFP_DMA32 one, for example).  :attr:`MaskRule.no_watermarks_after_oom` says so.

Boost (include/linux/mmzone.h wmark_pages(): _watermark[i] + watermark_boost): the slow path's
mark is min + boost.  zone_watermark_fast() retries an order-0 WMARK_MIN check with the unboosted
_watermark[WMARK_MIN] when ``gfp_mask & __GFP_ATOMIC`` (5.10, 6.1: GFP_ATOMIC only) or
``alloc_flags & ALLOC_MIN_RESERVE`` (6.12, 7.2: GFP_ATOMIC and the NOFAIL fallback).
/proc/zoneinfo's ``min`` is min_wmark_pages(), boost included; 6.1+ print ``boost`` too
(mm/vmstat.c: zoneinfo_show_print()), 5.10 does not.

The fast path (5.10 __alloc_pages_nodemask(), 6.1 __alloc_pages(), 6.12 __alloc_pages_noprof(),
7.2 __alloc_frozen_pages_noprof()) tries every mask with ALLOC_WMARK_LOW and no reserve flag: a
GFP_NOWAIT request fails there below the *low* watermark, then the slow path wakes kswapd and
lets it down to min.  This module models the slow path for an ordinary task: in 5.10 an RT
task's request without __GFP_ATOMIC (GFP_NOWAIT included) gets ALLOC_HARDER, min/4; in 6.1+ only
a reclaiming request from an RT task (6.12, 7.2: RT or deadline, rt_or_dl_task()) gets
ALLOC_MIN_RESERVE, min/2; PF_MEMALLOC, OOM victims and __GFP_MEMALLOC get ALLOC_NO_WATERMARKS or
ALLOC_OOM from __gfp_pfmemalloc_flags().
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from kmodlab.model.errors import ModelError
from kmodlab.model.tables import SERIES, series_version

MASKS = ("GFP_NOWAIT", "GFP_ATOMIC", "GFP_KERNEL|__GFP_NORETRY", "GFP_KERNEL|__GFP_NOFAIL")


@dataclass(frozen=True)
class MaskRule:
    """What one GFP mask gets from the page allocator's slow path, order 0."""

    direct_reclaim: bool        # __GFP_DIRECT_RECLAIM: reclaims and compacts itself
    wakes_kswapd: bool          # __GFP_KSWAPD_RECLAIM = ALLOC_KSWAPD: wake_all_kswapds()
    cuts: tuple[int, ...]       # divisors, in __zone_watermark_ok()'s order: (2, 4) is
    #                             min -= min / 2; min -= min / 4
    alloc_flags: str            # the alloc_flags of the check those cuts come from
    highatomic_usable: bool     # the highatomic reserve is not subtracted from free pages
    ignores_boost: bool         # zone_watermark_fast() retries with the unboosted min
    no_watermarks_after_oom: bool  # __alloc_pages_may_oom() retries with ALLOC_NO_WATERMARKS
    source: str

    @property
    def reserve_share(self) -> Fraction:
        """The share of min the cuts give away, before rounding (GFP_ATOMIC: 5/8)."""
        kept = Fraction(1)
        for d in self.cuts:
            kept *= 1 - Fraction(1, d)
        return 1 - kept


def _rules(*, min_reserve: bool, boost_by_alloc_flags: bool) -> dict[str, MaskRule]:
    """The four masks' rules: ``min_reserve`` for the 6.3 scheme (ALLOC_MIN_RESERVE,
    ALLOC_NON_BLOCK), else 5.10's (ALLOC_HIGH, ALLOC_HARDER); ``boost_by_alloc_flags`` where
    zone_watermark_fast() tests ALLOC_MIN_RESERVE rather than __GFP_ATOMIC."""
    high, harder = (("ALLOC_MIN_RESERVE", "ALLOC_NON_BLOCK") if min_reserve
                    else ("ALLOC_HIGH", "ALLOC_HARDER"))
    # no __GFP_DIRECT_RECLAIM: ALLOC_NON_BLOCK in the 6.3 scheme; 5.10 keys ALLOC_HARDER on
    # __GFP_ATOMIC, which GFP_NOWAIT lacks
    nowait = "ALLOC_WMARK_MIN|ALLOC_CPUSET|" + ("ALLOC_NON_BLOCK|" if min_reserve else "")
    nofail = "ALLOC_MIN_RESERVE" if min_reserve else "ALLOC_HARDER"
    return {
        "GFP_NOWAIT": MaskRule(
            direct_reclaim=False, wakes_kswapd=True, cuts=(),
            alloc_flags=nowait + "ALLOC_KSWAPD", highatomic_usable=min_reserve,
            ignores_boost=False, no_watermarks_after_oom=False,
            source="gfp_to_alloc_flags(): no __GFP_HIGH, no reclaim; __alloc_pages_slowpath(): "
                   "!can_direct_reclaim goes to nopage after the ALLOC_WMARK_MIN attempt"),
        "GFP_ATOMIC": MaskRule(
            direct_reclaim=False, wakes_kswapd=True, cuts=(2, 4),
            alloc_flags=f"ALLOC_WMARK_MIN|{high}|{harder}|ALLOC_KSWAPD", highatomic_usable=True,
            ignores_boost=True, no_watermarks_after_oom=False,
            source=f"gfp_to_alloc_flags(): __GFP_HIGH = {high}, "
                   + ("no __GFP_DIRECT_RECLAIM" if min_reserve else "__GFP_ATOMIC")
                   + f" -> {harder}; __zone_watermark_ok(): min -= min / 2, then min -= min / 4"),
        "GFP_KERNEL|__GFP_NORETRY": MaskRule(
            direct_reclaim=True, wakes_kswapd=True, cuts=(),
            alloc_flags="ALLOC_WMARK_MIN|ALLOC_CPUSET|ALLOC_KSWAPD", highatomic_usable=False,
            ignores_boost=False, no_watermarks_after_oom=False,
            source="gfp_to_alloc_flags(): no reserve flag; __alloc_pages_slowpath(): "
                   "__GFP_NORETRY goes to nopage after one direct reclaim/compaction round"),
        "GFP_KERNEL|__GFP_NOFAIL": MaskRule(
            direct_reclaim=True, wakes_kswapd=True, cuts=(2,) if min_reserve else (4,),
            alloc_flags=nofail, highatomic_usable=True, ignores_boost=boost_by_alloc_flags,
            no_watermarks_after_oom=True,
            source="__alloc_pages_slowpath() nopage: __alloc_pages_cpuset_fallback(gfp_mask, "
                   f"order, {nofail}, ac); __alloc_pages_may_oom(): ALLOC_NO_WATERMARKS once "
                   "out_of_memory() is reached"),
    }


# Keyed by the first covered series where the rules apply; 7.2 reads as 6.12.
RULES: dict[str, dict[str, MaskRule]] = {
    # 5.10.262: ALLOC_HIGH / ALLOC_HARDER
    "5.10": _rules(min_reserve=False, boost_by_alloc_flags=False),
    # 6.1.192: ALLOC_MIN_RESERVE / ALLOC_NON_BLOCK (the 6.3 rework, taken by 6.1.y); the boost
    # exception still tests __GFP_ATOMIC, which GFP_ATOMIC still has
    "6.1": _rules(min_reserve=True, boost_by_alloc_flags=False),
    # 6.12.95 and 7.2.13: zone_watermark_fast() tests ALLOC_MIN_RESERVE for the boost exception
    "6.12": _rules(min_reserve=True, boost_by_alloc_flags=True),
}


# Does an order-0 per-CPU list refill grow past pcp->batch?  mm/page_alloc.c:nr_pcp_alloc()
# takes ``batch << pcp->alloc_factor`` pages from the buddy lists after a single watermark
# check, doubling on each consecutive order-0 refill up to pcp->high (6.12.95 and 7.2.13; 6.1.192
# and 5.10.262 take pcp->batch, so a zone ends at most a batch below the floor).  With the
# doubling, one GFP_NOWAIT refill can take a zone below GFP_ATOMIC's floor: what is left for
# GFP_ATOMIC is luck.
REFILL_DOUBLES: dict[str, bool] = {"5.10": False, "6.1": False, "6.12": True}


def refill_doubles(series: str) -> bool:
    """Whether ``series``' order-0 per-CPU refills grow (see :data:`REFILL_DOUBLES`)."""
    if series not in SERIES:
        raise ModelError(f"no per-CPU refill rule for series {series!r}; covered: "
                         f"{', '.join(SERIES)}")
    first = max((k for k in REFILL_DOUBLES if series_version(k) <= series_version(series)),
                key=series_version)
    return REFILL_DOUBLES[first]


def mask_rule(series: str, gfp: str) -> MaskRule:
    """The rule for ``gfp`` (one of :data:`MASKS`, spaces ignored) in a covered series."""
    if series not in SERIES:
        raise ModelError(f"no watermark reserve rules for series {series!r}; covered: "
                         f"{', '.join(SERIES)}")
    mask = "".join(gfp.split())
    if mask not in MASKS:
        raise ModelError(f"no watermark reserve rule for {gfp!r}; covered: {', '.join(MASKS)}")
    first = max((k for k in RULES if series_version(k) <= series_version(series)),
                key=series_version)
    return RULES[first][mask]


def _cut(mark: int, cuts: tuple[int, ...]) -> int:
    low = mark
    for d in cuts:
        low -= low // d
    return low


def watermark_floor(series: str, gfp: str, min_pages: int, *, boost: int = 0) -> int:
    """The ``min`` __zone_watermark_ok() compares with, after its cuts, for an order-0
    allocation with ``gfp`` in the slow path: it passes while free pages minus unusable free
    > floor + lowmem_reserve.  ``min_pages`` is the zone's _watermark[WMARK_MIN] (zoneinfo's
    ``min`` minus ``boost``); ``boost`` its watermark_boost."""
    if min_pages < 0 or boost < 0:
        raise ModelError(f"watermarks are not negative: min {min_pages}, boost {boost}")
    rule = mask_rule(series, gfp)
    floor = _cut(min_pages + boost, rule.cuts)
    if rule.ignores_boost:
        floor = min(floor, _cut(min_pages, rule.cuts))
    return floor


def reserve_pages(series: str, gfp: str, min_pages: int, *, boost: int = 0) -> int:
    """How many pages below the min watermark ``gfp`` may take (negative: it must stay that
    far above min, as a boosted mark asks of masks that do not ignore the boost)."""
    return min_pages - watermark_floor(series, gfp, min_pages, boost=boost)


def watermark_ok(series: str, gfp: str, min_pages: int, free_pages: int, *,
                 lowmem_reserve: int = 0, highatomic: int = 0, free_cma: int = 0,
                 boost: int = 0) -> bool:
    """__zone_watermark_ok() for an order-0 slow-path allocation with ``gfp``: ``highatomic``
    is nr_reserved_highatomic (5.10, 6.1) or nr_free_highatomic (6.12, 7.2), ``free_cma``
    NR_FREE_CMA_PAGES (unusable for every mask here), ``lowmem_reserve`` the zone's
    lowmem_reserve[highest_zoneidx] (zoneinfo's ``protection``)."""
    rule = mask_rule(series, gfp)
    unusable = free_cma + (0 if rule.highatomic_usable else highatomic)
    return (free_pages - unusable
            > watermark_floor(series, gfp, min_pages, boost=boost) + lowmem_reserve)
