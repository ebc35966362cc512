"""Page orders and buddyinfo predictions."""

from __future__ import annotations

import pytest

from kmodlab.errors import ConfigError
from kmodlab.model import Model, ModelError
from kmodlab.model.pages import free_pages, pcp_refill_blocks, simulate_alloc

M = Model("x86_64", (6, 1), ncpus=2)
# an idle-guest DMA32 zone (orders 0..10) with nothing free at orders 4..7
IDLE = (312, 141, 95, 40, 0, 0, 0, 0, 3, 3, 212)


def delta(before: tuple[int, ...], after: tuple[int, ...]) -> dict[int, int]:
    return {o: a - b for o, (b, a) in enumerate(zip(before, after)) if a != b}


@pytest.mark.parametrize("order, count, consumed", [
    # mm/page_alloc.c:__rmqueue_smallest() + expand(); verified on x86_64 6.1 and 6.12: 4 x
    # order 5 consume one order-7 block, 4 x order 6 one order-8 block, 4 x order 8 one
    # order-10 block; freeing restores exactly (__free_one_page() merges)
    (5, 4, 7), (6, 4, 8), (8, 4, 10),
])
def test_buddy_orders_are_exact(order: int, count: int, consumed: int) -> None:
    state = list(IDLE)
    for o in range(order, consumed):
        state[o] = 0
    state[consumed] = max(state[consumed], 1)
    state_t = tuple(state)
    for version in ((6, 1), (6, 12)):
        m = Model("x86_64", version, ncpus=2)
        held = m.buddy_alloc(state_t, order, count)
        assert held.exact and delta(state_t, held.value) == {consumed: -1}
        freed = m.buddy_free(state_t, order, count)
        assert freed.exact and freed.value == state_t


def test_split_leaves_one_buddy_per_order() -> None:
    # mm/page_alloc.c:expand(): taking order 4 from an order-7 block leaves 4, 5, 6
    held = M.buddy_alloc(IDLE, 4).value
    assert delta(IDLE, held) == {8: -1, 4: 1, 5: 1, 6: 1, 7: 1}
    assert free_pages(IDLE) - free_pages(held) == 16


def test_order_10_takes_a_max_order_block() -> None:
    assert delta(IDLE, M.buddy_alloc(IDLE, 10, 2).value) == {10: -2}


def test_pcp_orders_are_bounded() -> None:
    for order in (0, 1, 2, 3, 9):
        p = M.buddy_alloc(IDLE, order, 1)
        assert not p.exact and p.value == IDLE and p.bound is not None
        lo, hi = p.bound
        assert hi == free_pages(IDLE) and lo < hi and p.accepts(hi)
    assert M.is_pcp_order(9) and not M.is_pcp_order(8) and not M.is_pcp_order(10)


def test_pcp_refill_shape() -> None:
    # Verified (6.12): an order-2 refill carved 15 order-2 blocks from one order-7 block:
    # [7]-1, [6]+1, [2]+1.  15 = max(63 >> 2, 2) (__rmqueue_pcplist / nr_pcp_alloc)
    m = Model("x86_64", (6, 12), ncpus=2)
    assert pcp_refill_blocks(m.params, 2) == 15
    state = (10, 5, 0, 0, 0, 0, 0, 4, 2, 2, 200)
    after, done = simulate_alloc(state, 2, pcp_refill_blocks(m.params, 2))
    assert done == 15 and delta(state, after) == {7: -1, 6: 1, 2: 1}
    lo, _ = m.buddy_alloc(state, 2, 1).bound  # type: ignore[misc]
    assert free_pages(state) - lo >= 60


def test_order0_refill_scales_on_612() -> None:
    # 6.12 mm/page_alloc.c:nr_pcp_alloc(): order-0 batch << alloc_factor (<= PCP_BATCH_SCALE_MAX 5)
    assert pcp_refill_blocks(Model("x86_64", (6, 1)).params, 0) == 63
    assert pcp_refill_blocks(Model("x86_64", (6, 12)).params, 0) == 63 << 5
    assert pcp_refill_blocks(Model("x86_64", (6, 12)).params, 9) == 2


def test_not_enough_memory_is_not_exact() -> None:
    p = M.buddy_alloc((0,) * 10 + (1,), 10, 2)
    assert not p.exact and "only 1 of 2" in p.reason


def test_orders_and_sizes() -> None:
    for arch, version in (("x86_64", (6, 1)), ("arm64", (6, 1)), ("x86_64", (6, 12)),
                          ("arm64", (6, 12))):
        m = Model(arch, version)
        # include/linux/mmzone.h: orders 0..10 on all four kernels (Debian arm64
        # ARCH_FORCE_MAX_ORDER 11 exclusive on 6.1, 10 inclusive on 6.12)
        assert m.max_page_order().value == 10
        assert m.pages_for_order(10).value == 1024 and m.bytes_for_order(3).value == 32768
        assert m.block_alignment(5).value == 128 * 1024
        with pytest.raises(ModelError):
            m.pages_for_order(11)
    assert [M.get_order(n).value for n in (1, 4096, 4097, 8192, 8193, 4 << 20)] == \
        [0, 0, 1, 1, 2, 10]


def test_preferred_zone_and_buddyinfo() -> None:
    # gfp_zone() + zonelist fallback; verified: x86 1 GiB has DMA + DMA32, arm64 1 GiB only DMA
    assert M.preferred_zone(["DMA", "DMA32"]) == "DMA32"
    assert M.preferred_zone(["DMA"]) == "DMA"
    assert M.preferred_zone(["DMA", "DMA32", "Normal"], "GFP_DMA32") == "DMA32"
    assert M.preferred_zone(["DMA", "DMA32"], "GFP_DMA") == "DMA"
    info = {(0, "DMA"): (0,) * 8 + (1, 1, 3), (0, "DMA32"): IDLE}
    p = M.buddyinfo_after_alloc(info, 5)
    assert p.value[(0, "DMA")] == info[(0, "DMA")]
    assert delta(IDLE, p.value[(0, "DMA32")]) == {8: -1, 5: 1, 6: 1, 7: 1}
    assert "DMA32" in p.reason
    with pytest.raises(ModelError):
        M.buddy_alloc(IDLE[:10], 5)


# ----------------------------------------------------------------------------- i386 HIGHMEM

def test_i386_has_highmem_above_lowmem_and_kmalloc_never_lands_there() -> None:
    """Measured on 6.1.0-57-686-pae: 512 MiB shows DMA and Normal; 1536 MiB adds HighMem from
    0x36ffe000 ("879MB LOWMEM available")."""
    from kmodlab.model import Model

    m = Model("i386", "6.1")
    assert m.highmem_zones(512 << 20).value == ("DMA", "Normal")
    assert m.highmem_zones(1536 << 20).value == ("DMA", "Normal", "HighMem")
    zones = ("DMA", "Normal", "HighMem")
    assert m.preferred_zone(zones, "GFP_KERNEL") == "Normal"
    assert m.preferred_zone(zones, "GFP_HIGHUSER") == "HighMem"
    assert m.preferred_zone(zones, "GFP_DMA32") == "Normal"        # no ZONE_DMA32 on i386
    assert m.preferred_zone(zones, "GFP_DMA") == "DMA"
    with pytest.raises(ModelError, match="no ZONE_HIGHMEM"):
        Model("x86_64", "6.1").highmem_zones(1536 << 20)
    # 64-bit: __GFP_HIGHMEM changes nothing
    assert Model("x86_64", "6.1").preferred_zone(("DMA", "DMA32"), "GFP_HIGHUSER") == "DMA32"


def test_i386_structures_are_32_bit() -> None:
    from kmodlab.model import Model

    p = Model("i386", "6.1").params
    assert (p.pointer_size, p.vm_struct_size, p.mempool_t_size, p.track_size) == (4, 36, 40, 20)
    assert p.devres_header_size == 24 and p.thread_size == 8192
    with pytest.raises(ConfigError, match="the model covers i386 on series 5.10, 6.1, not 6.12"):
        Model("i386", "6.12")


# ----------------------------------------------------------------------------- zones by RAM
def test_populated_zones_follow_the_guest_ram() -> None:
    """x86_64: DMA (16 MiB) and DMA32 below 4 GiB; arm64's RAM starts at 1 GiB and ZONE_DMA
    covers 32 bits; i386 gets HighMem above its lowmem limit (879 MiB)."""
    assert Model("x86_64", "6.12").populated_zones(1536 << 20).value == ("DMA", "DMA32")
    assert Model("arm64", "7.2").populated_zones(1536 << 20).value == ("DMA",)
    assert Model("i386", "6.1").populated_zones(512 << 20).value == ("DMA", "Normal")
    assert Model("i386", "5.10").populated_zones(1536 << 20).value == ("DMA", "Normal",
                                                                       "HighMem")
    with pytest.raises(ModelError, match="3 GiB"):
        Model("x86_64", "6.1").populated_zones(4 << 30)


def test_highuser_pages_come_from_highmem_only_where_it_exists() -> None:
    i386, x86 = Model("i386", "6.1"), Model("x86_64", "6.1")
    assert i386.preferred_zone(i386.populated_zones(1536 << 20).value, "GFP_HIGHUSER") == "HighMem"
    assert i386.preferred_zone(i386.populated_zones(512 << 20).value, "GFP_HIGHUSER") == "Normal"
    assert x86.preferred_zone(x86.populated_zones(1536 << 20).value, "GFP_HIGHUSER") == "DMA32"
