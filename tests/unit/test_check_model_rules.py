"""The model rules the cross-check added or corrected, each pinned to the kernel source it
follows and, where possible, to a real capture (tests/fixtures/proc/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.model import Model, ModelError
from kmodlab.model.pages import free_pages, pcp_batch, pcp_refill_blocks, zone_batchsize
from kmodlab.observe.zoneinfo import parse_zoneinfo

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc"
M61 = Model("x86_64", "6.1")
M612 = Model("x86_64", "6.12")


@pytest.mark.parametrize("capture", sorted(PROC.glob("*/zoneinfo.txt")),
                         ids=lambda p: p.parent.name)
def test_pcp_batch_of_every_captured_zone(capture: Path) -> None:
    # mm/page_alloc.c:zone_batchsize() + zone_set_pageset_high_and_batch(): max(1, batch)
    info = parse_zoneinfo(capture.read_text())
    populated = [z for z in info.values() if z.populated and z.pagesets]
    assert populated
    for zone in populated:
        assert {p.batch for p in zone.pagesets} == {pcp_batch(zone.managed)}, zone.name


def test_zone_batchsize_values() -> None:
    assert zone_batchsize(122591) == 31           # 512 MiB guest (arm64 6.1 DMA)
    assert zone_batchsize(262144) == 63           # 1 GiB: verified "batch: 63" in zoneinfo
    assert zone_batchsize(3840) == 0 and pcp_batch(3840) == 1   # x86's 16 MiB DMA zone
    assert zone_batchsize(10 << 20) == 63         # capped at 1 MiB / PAGE_SIZE / 4 -> 63
    with pytest.raises(ModelError):
        zone_batchsize(-1)


def test_refill_of_a_batch_1_zone_is_one_block() -> None:
    # __rmqueue_pcplist(): "if (batch > 1) batch = max(batch >> order, 2)"
    assert pcp_refill_blocks(M61.params, 3, batch=1) == 1
    assert pcp_refill_blocks(M61.params, 3, batch=31) == 3
    assert pcp_refill_blocks(M61.params, 9, batch=31) == 2


def test_pageblock_order() -> None:
    # include/linux/pageblock-flags.h: min(HUGETLB_PAGE_ORDER, max order) with HUGETLB_PAGE
    for arch in ("x86_64", "arm64"):
        for series in ("6.1", "6.12"):
            assert Model(arch, series).params.pageblock_order == 9


UNMOV = "UNMOVABLE"


def typed(**lists: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    return {k.upper(): v for k, v in lists.items()}


def test_split_uses_the_requests_own_migratetype() -> None:
    # __rmqueue_smallest(zone, order, migratetype): a free MOVABLE order-4 block does not count
    total = (4, 8, 6, 4, 5, 7, 7, 7, 4, 2, 101)
    mts = typed(unmovable=(1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0),
                movable=(3, 6, 5, 3, 4, 5, 5, 5, 4, 1, 101),
                reclaimable=(0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0))
    p = M61.buddy_alloc(total, 4, migratetype_counts=mts)
    assert p.exact and p.value == (4, 8, 6, 4, 6, 6, 7, 7, 4, 2, 101)   # verified x86_64 6.1
    # without the per-type counts the model would have taken the (movable) order-4 block
    assert M61.buddy_alloc(total, 4).value == (4, 8, 6, 4, 4, 7, 7, 7, 4, 2, 101)


def test_fallback_claims_the_largest_block() -> None:
    # __rmqueue_fallback() / __rmqueue_claim(): no UNMOVABLE block >= 7, so the largest MOVABLE
    # block (order 10 >= pageblock_order) is claimed whole and split (verified x86_64 6.1)
    total = (4, 8, 6, 4, 6, 7, 7, 6, 4, 2, 101)
    mts = typed(unmovable=(1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0),
                movable=(3, 6, 5, 3, 4, 5, 5, 5, 4, 1, 101),
                reclaimable=(0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0))
    for model in (M61, M612):
        p = model.buddy_alloc(total, 7, migratetype_counts=mts)
        assert p.exact and p.value == (4, 8, 6, 4, 6, 7, 7, 7, 5, 3, 100)
        assert "claim" in p.reason


def test_small_fallback_blocks_are_not_predictable() -> None:
    # the largest fallback block is below pageblock_order: a whole pageblock changes type first
    total = (0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0)
    mts = typed(unmovable=(0,) * 11, movable=total, reclaimable=(0,) * 11)
    p = M61.buddy_alloc(total, 5, migratetype_counts=mts)
    assert not p.exact and p.bound == (free_pages(total) - 32,) * 2


def test_freeing_a_pcp_order_can_only_add_buddy_pages() -> None:
    # free_unref_page_commit(): the block goes to the pcp list; a drain moves pages to the buddy
    counts = (4, 8, 6, 4, 6, 7, 7, 6, 4, 2, 101)
    p = M61.buddy_free(counts, 2, pcp_pages=500)
    assert p.bound == (free_pages(counts), free_pages(counts) + 504)
    assert M61.buddy_free(counts, 5).exact


def test_krealloc_keeps_the_object_while_it_fits() -> None:
    # mm/slab_common.c:__do_krealloc(): "if (ks >= new_size) return p"
    assert M61.krealloc(64, 100).value.moved and M61.krealloc(64, 100).value.ksize == 128
    step = M61.krealloc(16384, 3000)
    assert not step.value.moved and step.value.ksize == 16384
    assert M61.krealloc(256, 5000).value.ksize == 8192


def test_kvmalloc_path() -> None:
    # mm/util.c:kvmalloc_node(): kmalloc first; vmalloc above KMALLOC_MAX_SIZE
    small = M61.kvmalloc(65536).value
    assert not small.vmalloc and small.ksize == 65536
    big = M61.kvmalloc(8 << 20).value
    assert big.vmalloc and [a.size for a in big.areas] == [(2048 + 1) * 4096, 5 * 4096]
    assert not M61.kvmalloc(5 << 20).exact         # huge mappings may round it to 6 MiB


def test_mempool_resize() -> None:
    # mm/mempool.c:mempool_resize(): growing reallocates the array and fills the reserve
    grown = M61.mempool_resize(4, 4, 8).value
    assert (grown.min_nr, grown.curr_nr, grown.elements_cache, grown.reallocated) == \
        (8, 8, "kmalloc-64", True)
    shrunk = M61.mempool_resize(8, 8, 2).value
    assert (shrunk.min_nr, shrunk.curr_nr, shrunk.elements_cache) == (2, 2, "kmalloc-64")
    with pytest.raises(ModelError):
        M61.mempool_resize(4, 4, 0)


def test_ksize_rule_is_shared_by_every_slab_class() -> None:
    # one rule text for all classes (the cache name is the reason), so reports can group them
    a, b = M61.ksize(8), M61.ksize(160)
    assert a.rule == b.rule and b.reason == "s->size of kmalloc-192"
