"""The model on a generic-KASAN kernel (kmodlab's debug-memory builds).

The slot sizes themselves are checked against real captures of those kernels in
tests/fixtures/proc/<arch>-<series>+debug-memory/ (test_model_fixtures.py); these tests pin the
rules around them: what KASAN changes, what it leaves alone, and what the model still refuses.
"""

from __future__ import annotations

import pytest

from kmodlab.model import MergeCandidate, Model, ModelError
from kmodlab.model.slab import kasan_optimal_redzone

KASAN = {"CONFIG_SLUB": "y", "CONFIG_SLAB_MERGE_DEFAULT": "y", "CONFIG_KASAN": "y",
         "CONFIG_KASAN_GENERIC": "y"}
PLAIN = {"CONFIG_SLUB": "y", "CONFIG_SLAB_MERGE_DEFAULT": "y"}
SERIES = ("6.1", "6.12")


@pytest.mark.parametrize("series", SERIES)
def test_generic_kasan_is_modelled_not_refused(series: str) -> None:
    m = Model("x86_64", series, KASAN)
    assert m.params.kasan_generic
    assert not Model("x86_64", series, PLAIN).params.kasan_generic


@pytest.mark.parametrize("mode", ["CONFIG_KASAN_SW_TAGS", "CONFIG_KASAN_HW_TAGS"])
def test_tag_based_kasan_is_still_refused(mode: str) -> None:
    with pytest.raises(ModelError, match="CONFIG_KASAN_GENERIC"):
        Model("arm64", "6.12", {**KASAN, "CONFIG_KASAN_GENERIC": "n", mode: "y"})


@pytest.mark.parametrize("series", SERIES)
def test_kasan_slot_holds_object_metadata_and_redzone(series: str) -> None:
    # mm/kasan/generic.c:kasan_cache_create(): object + 16-byte alloc meta, at least
    # object + optimal_redzone(); the slot is then aligned (8 here).
    plain, kasan = Model("x86_64", series, PLAIN), Model("x86_64", series, KASAN)
    for size in (24, 100, 200, 1000, 3000):
        base = plain.slab_layout(size).value
        slot = kasan.slab_layout(size).value
        assert slot.size >= size + kasan_optimal_redzone(size)
        assert slot.size >= base.size + 16
        assert slot.size % slot.align == 0


@pytest.mark.parametrize("series", SERIES)
def test_kasan_ksize_is_the_object_size(series: str) -> None:
    # mm/slab.h:slab_ksize(): SLAB_KASAN caches report object_size, never the slot
    kasan = Model("x86_64", series, KASAN)
    assert kasan.ksize(100).value == 128
    assert kasan.ksize(3000).value == 4096
    assert kasan.kmem_cache(100).value.ksize == 100


@pytest.mark.parametrize("series", SERIES)
def test_kasan_caches_never_merge(series: str) -> None:
    kasan = Model("x86_64", series, KASAN)
    twin = MergeCandidate("twin", kasan.slab_size(100).value)
    verdict = kasan.would_merge(100, existing=[twin]).value
    assert verdict.target is None and "SLAB_KASAN" in verdict.reason
    assert "SLAB_KASAN" in (kasan.kmem_cache(100).value.unmergeable_reason or "")
    plain = Model("x86_64", series, PLAIN)
    twin = MergeCandidate("twin", plain.slab_size(100).value)
    assert plain.would_merge(100, existing=[twin]).value.target == "twin"


def test_small_objects_differ_between_61_and_612() -> None:
    # 6.1 appends the whole free meta for an object smaller than it; 6.12 tops the slot up
    # to the struct's size and keeps the free meta at offset 0.
    assert Model("x86_64", "6.1", KASAN).slab_size(8).value == 8 + 16 + 16
    assert Model("x86_64", "6.12", KASAN).slab_size(8).value == 8 + 16 + 8


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_kasan_doubles_task_stacks(arch: str) -> None:
    plain = Model(arch, "6.12", PLAIN).params.thread_size
    assert Model(arch, "6.12", KASAN).params.thread_size == 2 * plain


def test_shared_cache_counts_are_not_bounded_under_kasan() -> None:
    assert "quarantine" in Model("x86_64", "6.1", KASAN).shared_slab_count_noise()
    assert Model("x86_64", "6.1", PLAIN).shared_slab_count_noise() == ""
