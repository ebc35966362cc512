"""Watermark floors per GFP mask (kmodlab.model.reserves), computed by hand from the C code of
Debian's 5.10.262, 6.1.192, 6.12.95 and 7.2.13 trees (mm/page_alloc.c unless said otherwise)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kmodlab.model import ModelError
from kmodlab.model.reserves import (
    MASKS,
    mask_rule,
    reserve_pages,
    watermark_floor,
    watermark_ok,
)
from kmodlab.model.tables import SERIES

NOWAIT, ATOMIC, NORETRY, NOFAIL = MASKS


@pytest.mark.parametrize("series, floors", [
    # 5.10 __zone_watermark_ok(): GFP_ATOMIC has ALLOC_HIGH (min -= 1000/2 -> 500) and
    # ALLOC_HARDER (min -= 500/4 -> 375); the NOFAIL nopage fallback has ALLOC_HARDER alone
    # (min -= 1000/4 -> 750); GFP_NOWAIT and __GFP_NORETRY keep ALLOC_WMARK_MIN uncut
    ("5.10", {NOWAIT: 1000, ATOMIC: 375, NORETRY: 1000, NOFAIL: 750}),
    # 6.1.192 (the 6.3 rework in 6.1.y): ALLOC_MIN_RESERVE (-500) then ALLOC_NON_BLOCK (-125)
    # for GFP_ATOMIC; the NOFAIL fallback is ALLOC_MIN_RESERVE: 1000 - 500; GFP_NOWAIT's
    # ALLOC_NON_BLOCK sits inside the ALLOC_MIN_RESERVE branch and cuts nothing
    ("6.1", {NOWAIT: 1000, ATOMIC: 375, NORETRY: 1000, NOFAIL: 500}),
    # 6.12.95: the same __zone_watermark_ok() and gfp_to_alloc_flags()
    ("6.12", {NOWAIT: 1000, ATOMIC: 375, NORETRY: 1000, NOFAIL: 500}),
    # 7.2.13: the same again (__alloc_frozen_pages_noprof() is the fast path now)
    ("7.2", {NOWAIT: 1000, ATOMIC: 375, NORETRY: 1000, NOFAIL: 500}),
])
def test_floor_per_series(series: str, floors: dict[str, int]) -> None:
    for gfp, floor in floors.items():
        assert watermark_floor(series, gfp, 1000) == floor, gfp
        assert reserve_pages(series, gfp, 1000) == 1000 - floor, gfp


@pytest.mark.parametrize("min_pages, atomic, nofail_510, nofail_61", [
    # __zone_watermark_ok(), C integer division, min/2 before min/4:
    # 1001: 1001 - 500 = 501, 501 - 125 = 376; 5.10 NOFAIL 1001 - 250 = 751; 6.1+ 501
    (1001, 376, 751, 501),
    # 1423: 1423 - 711 = 712, 712 - 178 = 534; 1423 - 355 = 1068; 712
    (1423, 534, 1068, 712),
    # 7: 7 - 3 = 4, 4 - 1 = 3; 7 - 1 = 6; 4
    (7, 3, 6, 4),
    # 5: 5 - 2 = 3, 3 - 0 = 3 (the other order, 5 - 1 = 4, 4 - 2 = 2, would give 2); 5 - 1 = 4; 3
    (5, 3, 4, 3),
    # 3: 3 - 1 = 2, 2 - 0 = 2; 3 - 0 = 3 (5.10's NOFAIL fallback gains nothing); 2
    (3, 2, 3, 2),
    # 1: 1 - 0 = 1, nothing to take; 0 stays 0
    (1, 1, 1, 1),
    (0, 0, 0, 0),
])
def test_odd_minimums_use_integer_division(min_pages: int, atomic: int, nofail_510: int,
                                           nofail_61: int) -> None:
    for series in SERIES:
        assert watermark_floor(series, ATOMIC, min_pages) == atomic
        assert watermark_floor(series, NOWAIT, min_pages) == min_pages
        assert watermark_floor(series, NORETRY, min_pages) == min_pages
    assert watermark_floor("5.10", NOFAIL, min_pages) == nofail_510
    for series in ("6.1", "6.12", "7.2"):
        assert watermark_floor(series, NOFAIL, min_pages) == nofail_61


def test_reserve_is_the_pages_below_min() -> None:
    # 1423 as above: GFP_ATOMIC may take 1423 - 534 = 889 pages below min
    assert reserve_pages("6.12", ATOMIC, 1423) == 889
    assert reserve_pages("5.10", NOFAIL, 1423) == 355
    assert reserve_pages("7.2", NOFAIL, 1423) == 711
    assert reserve_pages("6.1", NOWAIT, 1423) == 0


def test_reserve_shares() -> None:
    # GFP_ATOMIC: 1 - (1/2)(3/4) = 5/8 (mm/internal.h's "62.5%" for ALLOC_NON_BLOCK with
    # __GFP_HIGH); the NOFAIL fallback: ALLOC_HARDER 1/4 in 5.10, ALLOC_MIN_RESERVE 1/2 later
    for series in SERIES:
        assert mask_rule(series, ATOMIC).reserve_share == Fraction(5, 8)
        assert mask_rule(series, NOWAIT).reserve_share == 0
    assert mask_rule("5.10", NOFAIL).reserve_share == Fraction(1, 4)
    assert mask_rule("6.1", NOFAIL).reserve_share == Fraction(1, 2)


def test_reclaim_and_kswapd_facts() -> None:
    # include/linux/gfp.h (5.10) / gfp_types.h: GFP_NOWAIT and GFP_ATOMIC carry
    # __GFP_KSWAPD_RECLAIM only, GFP_KERNEL both reclaim bits (__GFP_RECLAIM)
    for series in SERIES:
        for gfp in MASKS:
            rule = mask_rule(series, gfp)
            assert rule.wakes_kswapd
            assert rule.direct_reclaim == gfp.startswith("GFP_KERNEL")
            # __alloc_pages_may_oom(): only __GFP_NOFAIL gets ALLOC_NO_WATERMARKS
            assert rule.no_watermarks_after_oom == (gfp == NOFAIL)


def test_7_2_reads_as_6_12() -> None:
    for gfp in MASKS:
        assert mask_rule("7.2", gfp) == mask_rule("6.12", gfp)


def test_highatomic_counts_for_reserve_users_only() -> None:
    # __zone_watermark_unusable_free(): 5.10 subtracts nr_reserved_highatomic unless
    # ALLOC_HARDER|ALLOC_OOM, so GFP_NOWAIT (no flag) loses it: 1100 - 100 = 1000 <= 1000 fails
    assert not watermark_ok("5.10", NOWAIT, 1000, 1100, highatomic=100)
    assert watermark_ok("5.10", NOWAIT, 1000, 1100, highatomic=99)
    # 6.1+: ALLOC_NON_BLOCK is in ALLOC_RESERVES, so GFP_NOWAIT keeps the 100 pages
    for series in ("6.1", "6.12", "7.2"):
        assert watermark_ok(series, NOWAIT, 1000, 1100, highatomic=100)
    # __GFP_NORETRY has no reserve flag in any series
    for series in SERIES:
        assert not watermark_ok(series, NORETRY, 1000, 1100, highatomic=100)


def test_cma_and_lowmem_reserve() -> None:
    # no mask here is movable: no ALLOC_CMA, NR_FREE_CMA_PAGES is unusable (arm64's 64 MiB
    # area is 16384 pages): 17000 - 16384 = 616 > 600 passes, and fails once
    # lowmem_reserve 16 makes it 616 <= 600 + 16
    for series in SERIES:
        assert watermark_ok(series, NORETRY, 600, 17000, free_cma=16384)
        assert not watermark_ok(series, NORETRY, 600, 17000, free_cma=16384, lowmem_reserve=16)
    # GFP_ATOMIC at min 1000: floor 375; passes at 376 free, not at 375 (the check is <=)
    assert watermark_ok("6.12", ATOMIC, 1000, 376)
    assert not watermark_ok("6.12", ATOMIC, 1000, 375)
    assert not watermark_ok("6.12", ATOMIC, 1000, 400, lowmem_reserve=25)


def test_boost() -> None:
    # mark = _watermark[WMARK_MIN] + watermark_boost = 1200.  zone_watermark_fast() retries
    # with the unboosted 1000 for __GFP_ATOMIC (5.10, 6.1) / ALLOC_MIN_RESERVE (6.12, 7.2)
    for series in SERIES:
        # GFP_ATOMIC: min(1200 -> 600 -> 450, 1000 -> 375)
        assert watermark_floor(series, ATOMIC, 1000, boost=200) == 375
        # GFP_NOWAIT keeps the boosted mark: 200 pages above min
        assert watermark_floor(series, NOWAIT, 1000, boost=200) == 1200
        assert reserve_pages(series, NOWAIT, 1000, boost=200) == -200
    # the NOFAIL fallback (GFP_KERNEL: no __GFP_ATOMIC): 5.10 1200 - 300, 6.1 1200 - 600;
    # 6.12 and 7.2 test ALLOC_MIN_RESERVE, so min(600, 500)
    assert watermark_floor("5.10", NOFAIL, 1000, boost=200) == 900
    assert watermark_floor("6.1", NOFAIL, 1000, boost=200) == 600
    assert watermark_floor("6.12", NOFAIL, 1000, boost=200) == 500
    assert watermark_floor("7.2", NOFAIL, 1000, boost=200) == 500


def test_floor_grows_with_min() -> None:
    for series in SERIES:
        for gfp in MASKS:
            floors = [watermark_floor(series, gfp, m) for m in range(3000)]
            assert floors == sorted(floors)
            assert all(0 <= f <= m for m, f in enumerate(floors))


def test_spaces_in_masks_are_ignored() -> None:
    assert watermark_floor("6.1", "GFP_KERNEL | __GFP_NOFAIL", 1000) == 500


@pytest.mark.parametrize("series, gfp, words", [
    ("6.6", ATOMIC, "5.10, 6.1, 6.12, 7.2"),
    ("4.19", ATOMIC, "covered"),
    ("6.1", "GFP_KERNEL", "GFP_NOWAIT, GFP_ATOMIC"),
    ("6.1", "GFP_KERNEL|__GFP_HIGH", "GFP_KERNEL|__GFP_NOFAIL"),
])
def test_unknown_series_or_mask_names_what_is_covered(series: str, gfp: str,
                                                      words: str) -> None:
    with pytest.raises(ModelError, match=words.replace("|", r"\|")):
        watermark_floor(series, gfp, 1000)


def test_negative_watermark_is_refused() -> None:
    with pytest.raises(ModelError):
        watermark_floor("6.1", ATOMIC, -1)
