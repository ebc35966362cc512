"""kmalloc size classes, ksize, roundup and large allocations.

Every expected number is either "verified" (seen on the booted Debian kernels; see
docs/kernel-notes.md, "kmalloc size classes" and "ksize") or cites the kernel source it follows.
"""

from __future__ import annotations

import pytest

from kmodlab.model import Model, ModelError

KERNELS = [("x86_64", (6, 1)), ("x86_64", (6, 12)), ("arm64", (6, 1)), ("arm64", (6, 12))]
IDS = ["x86_64-6.1", "x86_64-6.12", "arm64-6.1", "arm64-6.12"]


def model(arch: str, version: tuple[int, int], ncpus: int = 2) -> Model:
    return Model(arch, version, ncpus=ncpus)


@pytest.mark.parametrize("arch, version", KERNELS, ids=IDS)
def test_kmalloc_limits(arch: str, version: tuple[int, int]) -> None:
    # include/linux/slab.h:KMALLOC_SHIFT_HIGH/_MAX; verified: KMALLOC_MAX_CACHE_SIZE=8192
    # KMALLOC_MAX_SIZE=4194304 on all four
    m = model(arch, version)
    assert m.constant("KMALLOC_MAX_CACHE_SIZE").value == 8192
    assert m.constant("KMALLOC_MAX_SIZE").value == 4194304
    assert m.KMALLOC_MAX_SIZE == 4194304 and m.PAGE_SIZE == 4096
    # mm/vmstat.c:frag_show_print(): 11 columns (orders 0..10) on every kernel
    assert m.constant("NR_PAGE_ORDERS").value == 11


@pytest.mark.parametrize("arch, version, min_size, minalign", [
    ("x86_64", (6, 1), 8, 8),      # include/linux/slab.h default
    ("x86_64", (6, 12), 8, 8),
    ("arm64", (6, 1), 128, 128),   # ARCH_DMA_MINALIGN 128; verified KMALLOC_MIN_SIZE=128
    ("arm64", (6, 12), 8, 8),      # arch/arm64/include/asm/cache.h: decoupled in 6.5
])
def test_kmalloc_min_size(arch: str, version: tuple[int, int], min_size: int, minalign: int) -> None:
    m = model(arch, version)
    assert m.KMALLOC_MIN_SIZE == min_size
    assert m.constant("ARCH_KMALLOC_MINALIGN").value == minalign


NORMAL_ALL = {"kmalloc-8", "kmalloc-16", "kmalloc-32", "kmalloc-64", "kmalloc-96", "kmalloc-128",
              "kmalloc-192", "kmalloc-256", "kmalloc-512", "kmalloc-1k", "kmalloc-2k",
              "kmalloc-4k", "kmalloc-8k"}


@pytest.mark.parametrize("arch, version, expected", [
    ("x86_64", (6, 1), NORMAL_ALL),      # mm/slab_common.c:create_kmalloc_caches()
    ("x86_64", (6, 12), NORMAL_ALL),
    # create_kmalloc_caches(): no 96/192 above KMALLOC_MIN_SIZE 32/64; verified: arm64 6.1
    # slabinfo has only kmalloc-128 .. kmalloc-8k
    ("arm64", (6, 1), {"kmalloc-128", "kmalloc-256", "kmalloc-512", "kmalloc-1k", "kmalloc-2k",
                       "kmalloc-4k", "kmalloc-8k"}),
    # mm/slab_common.c:__kmalloc_minalign() is 8 with DMA bouncing; verified: arm64 6.12 has
    # kmalloc-8 .. kmalloc-8k incl. 96 and 192
    ("arm64", (6, 12), NORMAL_ALL),
])
def test_which_kmalloc_caches_exist(arch: str, version: tuple[int, int], expected: set[str]) -> None:
    caches = model(arch, version).kmalloc_caches().value
    normal = {n for n, c in caches.items() if c.type == "normal"}
    assert normal == expected
    # cg, rcl and dma families exist for every size (MEMCG=y, ZONE_DMA=y in Debian)
    for prefix in ("kmalloc-cg-", "kmalloc-rcl-", "dma-kmalloc-"):
        assert {n[len(prefix):] for n in caches if n.startswith(prefix)} == \
            {n[len("kmalloc-"):] for n in expected}


@pytest.mark.parametrize("arch, version, expected", [
    ("x86_64", (6, 1), 192), ("x86_64", (6, 12), 192), ("arm64", (6, 12), 192),
    ("arm64", (6, 1), 256),
])
def test_ksize_160(arch: str, version: tuple[int, int], expected: int) -> None:
    # mm/slab.h:slab_ksize() = s->size; verified: ksize(kmalloc(160)) 192 on x86 6.1/6.12 and
    # arm64 6.12, 256 on arm64 6.1
    m = model(arch, version)
    p = m.ksize(160)
    assert p.value == expected and p.exact and "slab_ksize" in p.rule
    assert m.kmalloc_cache_for(160).value == f"kmalloc-{expected}"


ROUNDUP_COLUMNS = [1, 8, 9, 16, 17, 32, 33, 64, 65, 96, 97, 128, 129, 192, 193, 256, 257, 512,
                   4097, 8192, 8193, 16384, 20000, 65536, 100000]
ROUNDUP_X86 = [8, 8, 16, 16, 32, 32, 64, 64, 96, 96, 128, 128, 192, 192, 256, 256, 512, 512,
               8192, 8192, 16384, 16384, 32768, 65536, 131072]
ROUNDUP_ARM61 = [128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 256, 256, 256, 256,
                 512, 512, 8192, 8192, 16384, 16384, 32768, 65536, 131072]


@pytest.mark.parametrize("arch, version, row", [
    # mm/slab_common.c:kmalloc_size_roundup(); docs/kernel-notes.md, "kmalloc size classes"
    ("x86_64", (6, 1), ROUNDUP_X86),    # verified
    ("x86_64", (6, 12), ROUNDUP_X86),   # verified
    ("arm64", (6, 12), ROUNDUP_X86),    # verified
    ("arm64", (6, 1), ROUNDUP_ARM61),   # setup_kmalloc_cache_index_table() with a 128 minimum
])
def test_kmalloc_size_roundup_table(arch: str, version: tuple[int, int], row: list[int]) -> None:
    m = model(arch, version)
    assert [m.kmalloc_size_roundup(n).value for n in ROUNDUP_COLUMNS] == row


def test_kmalloc_size_roundup_edges() -> None:
    # mm/slab_common.c:kmalloc_size_roundup(): 6.1 0 -> 0, SIZE_MAX -> SIZE_MAX, pages without
    # a limit above 8K; 6.12 returns 0 and too-large sizes unchanged
    size_max = (1 << 64) - 1
    m61, m612 = model("x86_64", (6, 1)), model("x86_64", (6, 12))
    assert m61.kmalloc_size_roundup(0).value == 0 and m612.kmalloc_size_roundup(0).value == 0
    assert m61.kmalloc_size_roundup(size_max).value == size_max
    assert m612.kmalloc_size_roundup(size_max).value == size_max
    assert m61.kmalloc_size_roundup(5 << 20).value == 8 << 20        # beyond KMALLOC_MAX_SIZE
    assert m612.kmalloc_size_roundup(5 << 20).value == 5 << 20
    assert m612.kmalloc_size_roundup(4 << 20).value == 4 << 20


@pytest.mark.parametrize("size, order", [
    # __kmalloc_large_node(): get_order(size); order 11 exceeds the largest order
    (8193, 2), (16384, 2), (16385, 3), (32768, 3), (65536, 4), (4 << 20, 10), ((4 << 20) + 1, 11),
])
def test_kmalloc_large_order(size: int, order: int) -> None:
    for arch, version in KERNELS:
        m = model(arch, version)
        p = m.kmalloc_large_order(size)
        assert p.value == order
        assert ("NULL" in p.reason) == (order > 10)
        assert m.kmalloc_cache_for(size).value is None


def test_large_kmalloc_ksize_and_failure() -> None:
    m = model("x86_64", (6, 12))
    assert m.kmalloc_large_order(8192).value is None
    assert m.ksize(20000).value == 32768        # mm/slab_common.c:__ksize() -> folio_size()
    assert m.ksize((4 << 20) + 1).value == 0    # order 11 > MAX_PAGE_ORDER -> NULL
    assert m.ksize(0).value == 0                # ZERO_SIZE_PTR: mm/slab_common.c:ksize()
    assert m.kmalloc_cache_for(0).value is None


def test_kmalloc_type_families() -> None:
    # include/linux/slab.h:kmalloc_type(): DMA > RECLAIMABLE > ACCOUNT
    m = model("x86_64", (6, 1))
    assert m.kmalloc_cache_for(200, "GFP_KERNEL_ACCOUNT").value == "kmalloc-cg-256"
    assert m.kmalloc_cache_for(100, "GFP_KERNEL | __GFP_RECLAIMABLE").value == "kmalloc-rcl-128"
    assert m.kmalloc_cache_for(1000, "GFP_DMA").value == "dma-kmalloc-1k"
    assert m.kmalloc_cache_for(8, "GFP_KERNEL|__GFP_DMA|__GFP_RECLAIMABLE").value == "dma-kmalloc-8"
    assert m.kmalloc_cache_for(8, "GFP_KERNEL_ACCOUNT|__GFP_RECLAIMABLE").value == "kmalloc-rcl-8"
    assert m.kmalloc_cache_for(4096, "GFP_ATOMIC").value == "kmalloc-4k"
    # __GFP_DMA32 is in GFP_SLAB_BUG_MASK: kmalloc_fix_flags() drops it
    assert m.kmalloc_cache_for(64, "GFP_DMA32").value == "kmalloc-64"
    with pytest.raises(ModelError, match="unknown GFP flag"):
        m.kmalloc_cache_for(64, "GFP_KERNAL")


def test_memcg_off_sends_account_to_normal() -> None:
    kc = {"CONFIG_SLUB": "y", "CONFIG_ZONE_DMA": "y"}
    m = Model("x86_64", (6, 1), kc)
    assert m.kmalloc_cache_for(64, "GFP_KERNEL_ACCOUNT").value == "kmalloc-64"
    assert not any(n.startswith("kmalloc-cg-") for n in m.kmalloc_caches().value)
    # without MEMCG_KMEM, __GFP_ACCOUNT is not a "not normal" bit (include/linux/slab.h)


def test_random_kmalloc_caches_are_not_exact() -> None:
    from kmodlab.model.tables import DEBIAN_KCONFIG
    kc = dict(DEBIAN_KCONFIG[("x86_64", "6.12")], CONFIG_RANDOM_KMALLOC_CACHES="y")
    p = Model("x86_64", (6, 12), kc).kmalloc_cache_for(100)
    assert not p.exact and p.value == "kmalloc-128" and "rnd" in p.reason


def test_kmalloc_cache_alignment() -> None:
    # mm/slab_common.c:create_boot_cache(); verified: /sys/kernel/slab/kmalloc-192/align is
    # 8 on 6.1, 64 on 6.12
    assert model("x86_64", (6, 1)).kmalloc_cache("kmalloc-192").align == 8
    assert model("x86_64", (6, 12)).kmalloc_cache("kmalloc-192").align == 64
    # mm/slab_common.c:create_boot_cache() 6.12: 1 << (ffs(96) - 1) = 32; size stays 96/192
    assert model("x86_64", (6, 12)).kmalloc_cache("kmalloc-96").align == 32
    for arch, version in KERNELS:
        for cache in model(arch, version).kmalloc_caches().value.values():
            assert cache.size == cache.object_size          # s->size unchanged on every kernel


def test_arm64_612_without_swiotlb_aliases_small_caches() -> None:
    # mm/slab_common.c:__kmalloc_minalign(): swiotlb=noforce -> cache_line_size() (64)
    m = Model("arm64", (6, 12), swiotlb=False)
    assert m.kmalloc_cache_for(8).value == "kmalloc-64"
    assert m.kmalloc_cache_for(72).value == "kmalloc-128"      # ALIGN(96, 64) = 128
    assert m.kmalloc_cache_for(160).value == "kmalloc-192"
    assert m.ksize(8).value == 64 and m.kmalloc_size_roundup(8).value == 64


def test_waste() -> None:
    w = model("x86_64", (6, 12)).kmalloc_waste(160).value
    assert (w.requested, w.allocated, w.bytes) == (160, 192, 32)
    assert round(w.percent, 1) == 16.7


def test_kfence_sampling_makes_ksize_a_bound() -> None:
    # mm/kfence/core.c:kfence_ksize(): a sampled object reports its requested size
    p = Model("x86_64", (6, 12), kfence_sample_interval=100).ksize(160)
    assert not p.exact and p.bound == (160, 192) and p.accepts(160) and p.accepts(192)
    assert Model("x86_64", (6, 12)).ksize(160).exact      # KFENCE_SAMPLE_INTERVAL=0 in Debian


def test_explain_kmalloc() -> None:
    text = model("arm64", (6, 1)).explain_kmalloc(160)
    assert "size_index[(160 - 1) / 8 = 19] = 8" in text and "kmalloc-256" in text
    assert "KMALLOC_MIN_SIZE is 128" in text
    text = model("x86_64", (6, 12)).explain_kmalloc(160, "GFP_KERNEL_ACCOUNT")
    assert "kmalloc-cg-192" in text and "mm/slab.h:kmalloc_slab()" in text
    assert "order-0 slab" in text and "21 objects" in text
    assert "folio_size() = 32768" in model("x86_64", (6, 1)).explain_kmalloc(20000)
    assert "NULL" in model("x86_64", (6, 1)).explain_kmalloc(8 << 20)
    assert "ZERO_SIZE_PTR" in model("x86_64", (6, 1)).explain_kmalloc(0)
    assert "Unexpected gfp" in model("x86_64", (6, 1)).explain_kmalloc(64, "GFP_DMA32")
