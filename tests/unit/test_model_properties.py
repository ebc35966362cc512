"""Property-based checks of the model's invariants (hypothesis), on all four kernels."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from kmodlab.model import Model, SlabFlag
from kmodlab.model.pages import free_pages, simulate_alloc

KERNELS = [("x86_64", (6, 1)), ("x86_64", (6, 12)), ("arm64", (6, 1)), ("arm64", (6, 12))]
MAX_SIZE = 4 << 20


@cache
def model(i: int, ncpus: int = 2) -> Model:
    arch, version = KERNELS[i]
    return Model(arch, version, ncpus=ncpus)


kernel = st.integers(0, len(KERNELS) - 1)
sizes = st.integers(1, MAX_SIZE)
cpus = st.sampled_from([1, 2, 3, 4, 8, 16, 64])
flag_sets = st.sets(st.sampled_from(["SLAB_HWCACHE_ALIGN", "SLAB_ACCOUNT", "SLAB_RECLAIM_ACCOUNT",
                                     "SLAB_TYPESAFE_BY_RCU", "SLAB_RED_ZONE", "SLAB_POISON",
                                     "SLAB_STORE_USER", "SLAB_NOLEAKTRACE"]))


@settings(max_examples=400)
@given(kernel, sizes)
def test_ksize_covers_the_request(k: int, size: int) -> None:
    m = model(k)
    assert m.ksize(size).value >= size
    assert m.kmalloc_size_roundup(size).value >= size


@settings(max_examples=400)
@given(kernel, sizes, sizes)
def test_ksize_is_monotone(k: int, a: int, b: int) -> None:
    m = model(k)
    lo, hi = sorted((a, b))
    assert m.ksize(lo).value <= m.ksize(hi).value


@settings(max_examples=300)
@given(kernel, sizes)
def test_roundup_is_ksize_and_idempotent(k: int, size: int) -> None:
    m = model(k)
    r = m.kmalloc_size_roundup(size).value
    assert r == m.ksize(size).value
    assert m.kmalloc_size_roundup(r).value == r          # a rounded size is its own class


@settings(max_examples=300)
@given(kernel, st.integers(1, 8192))
def test_cache_serves_the_size(k: int, size: int) -> None:
    m = model(k)
    name = m.kmalloc_cache_for(size).value
    assert name is not None
    cache = m.kmalloc_cache(name)
    assert cache.object_size >= size and cache.size % cache.align == 0
    assert m.KMALLOC_MIN_SIZE <= cache.size


@settings(max_examples=400)
@given(kernel, st.integers(1, 1 << 40))
def test_page_order_covers_the_size(k: int, size: int) -> None:
    m = model(k)
    order = m.get_order(size).value
    assert m.PAGE_SIZE << order >= size
    assert order == 0 or m.PAGE_SIZE << (order - 1) < size


@settings(max_examples=400)
@given(kernel, cpus, st.integers(1, 65536))
def test_slab_geometry_fits(k: int, ncpus: int, size: int) -> None:
    m = model(k, ncpus)
    g = m.slab_geometry(size).value
    assert g.objects >= 1
    assert g.objects * size <= g.slab_bytes
    assert (g.objects + 1) * size > g.slab_bytes          # as many as fit
    if size <= m.PAGE_SIZE << 3:
        assert g.order <= 3                               # slub_max_order
    assert g.min_order <= g.order


@settings(max_examples=400)
@given(kernel, st.integers(1, 16384), st.sampled_from([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 4096]),
       flag_sets, st.booleans())
def test_layout_invariants(k: int, size: int, align: int, flags: set[str], ctor: bool) -> None:
    m = model(k)
    expr = "|".join(sorted(flags))
    a = m.calculate_alignment(size, align, expr).value
    assert a % 8 == 0 and a >= max(align, 8) and a & (a - 1) == 0
    if "SLAB_HWCACHE_ALIGN" in flags:
        assert a >= min(64, max(8, 1 << (size - 1).bit_length()))
    layout = m.slab_layout(size, align, expr, ctor).value
    assert layout.size % layout.align == 0
    assert layout.size >= (size + 7) // 8 * 8
    assert layout.inuse >= size and layout.offset + 8 <= layout.size
    if ctor or "SLAB_TYPESAFE_BY_RCU" in flags or "SLAB_POISON" in flags:
        assert layout.freeptr_outside
    if not flags and not ctor:                            # nothing added: ALIGN(ALIGN(size, 8), a)
        assert layout.size == -(-((size + 7) // 8 * 8) // a) * a


@settings(max_examples=200)
@given(kernel, st.integers(1, 16384), st.sampled_from([0, 8, 64]), st.booleans())
def test_merge_target_has_same_slot(k: int, size: int, align: int, acct: bool) -> None:
    from kmodlab.model import MergeCandidate
    m = model(k)
    flags = SlabFlag.ACCOUNT if acct else SlabFlag.NONE
    slot = m.slab_size(size, align, flags).value
    same = MergeCandidate("same", slot, flags)
    verdict = m.would_merge(size, align, flags, existing=[MergeCandidate("kmalloc-8k", 8192), same])
    assert verdict.value.target == "same"
    other = MergeCandidate("other", slot, SlabFlag.NONE if acct else SlabFlag.ACCOUNT)
    assert m.would_merge(size, align, flags, existing=[other]).value.target is None


buddy_state = st.lists(st.integers(0, 50), min_size=11, max_size=11)


@settings(max_examples=300)
@given(kernel, buddy_state, st.sampled_from([4, 5, 6, 7, 8, 10]), st.integers(1, 8))
def test_buddy_alloc_conserves_pages(k: int, counts: list[int], order: int, n: int) -> None:
    m = model(k)
    after, done = simulate_alloc(counts, order, n)
    assert free_pages(counts) - free_pages(after) == done << order
    assert all(c >= 0 for c in after)
    p = m.buddy_alloc(counts, order, n)
    assert p.value == after and p.exact == (done == n)
    assert m.buddy_free(counts, order, n).value == tuple(counts)


@settings(max_examples=200)
@given(kernel, st.integers(1, 64 << 20))
def test_vmalloc_areas(k: int, size: int) -> None:
    m = model(k)
    plan = m.vmalloc(size).value
    main = plan.areas[0]
    assert main.pages * m.PAGE_SIZE >= size > (main.pages - 1) * m.PAGE_SIZE
    for area in plan.areas:
        assert area.size == (area.pages + 1) * m.PAGE_SIZE       # one guard page
        assert ("vpages" in area.flags) == (area.pages * 8 > m.PAGE_SIZE)
    assert len(plan.areas) == 1 + sum("vpages" in a.flags for a in plan.areas)


@settings(max_examples=200)
@given(kernel, st.integers(1, 40000), st.sampled_from([None, 1, 2, 4, 8, 16, 4096, 8192]))
def test_percpu_rounding(k: int, size: int, align: int | None) -> None:
    a = model(k).alloc_percpu(size, align).value
    assert a.size % 4 == 0 and a.size >= size and a.align >= 4
    assert a.valid == (a.size <= 32768 and a.align <= 4096)
    assert a.total_bytes == (a.size * 2 if a.valid else 0)
