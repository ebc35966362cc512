"""vmalloc areas, mempool reserves, per-CPU allocations and devres headers."""

from __future__ import annotations

import pytest

from kmodlab.model import Model, ModelError

KERNELS = [("x86_64", (6, 1)), ("x86_64", (6, 12)), ("arm64", (6, 1)), ("arm64", (6, 12))]


@pytest.mark.parametrize("arch, version", KERNELS)
def test_vmalloc_verified_figures(arch: str, version: tuple[int, int]) -> None:
    m = Model(arch, version, ncpus=2)
    # mm/vmalloc.c:__get_vm_area_node() adds the guard page; verified: vmalloc(10000) ->
    # "16384 ... pages=3 vmalloc N0=3"
    small = m.vmalloc(10000).value
    assert [(a.size, a.pages, a.flags) for a in small.areas] == [(16384, 3, ("vmalloc",))]
    # Verified: vmalloc(4096) -> 8192 pages=1
    assert m.vmallocinfo_size(4096).value == 8192 and m.vmalloc_pages(4096).value == 1
    # __vmalloc_area_node() vmallocs the page array above 512 pages; verified: 3 MiB ->
    # 3149824 pages=768 vmalloc vpages, plus 12288 pages=2
    big = m.vmalloc(3 << 20).value
    assert [(a.size, a.pages, a.flags) for a in big.areas] == [
        (3149824, 768, ("vmalloc", "vpages")), (12288, 2, ("vmalloc",))]
    assert m.vmalloc_entries(3 << 20).value == 2 and big.vmalloc_used_pages == 770
    assert big.page_array_bytes == 6144 and big.page_array_cache is None


def test_vmalloc_page_array_threshold() -> None:
    # mm/vmalloc.c:__vmalloc_area_node(): kmalloc up to PAGE_SIZE (512 pages), nested vmalloc above
    m = Model("x86_64", (6, 12))
    at = m.vmalloc(512 * 4096).value
    assert len(at.areas) == 1 and at.page_array_cache == "kmalloc-4k"
    above = m.vmalloc(513 * 4096).value
    assert len(above.areas) == 2 and above.areas[1].pages == 2
    assert m.vmalloc(10000).value.page_array_cache == "kmalloc-32"   # 3 * 8 = 24 bytes
    assert m.vmalloc(0).value.areas == ()


def test_vm_struct_cache() -> None:
    # include/linux/vmalloc.h: vm_struct is 64 B (kmalloc-64) in 6.1, 72 B (kmalloc-96) in
    # 6.12.117 (requested_size); arm64 6.1 rounds both to kmalloc-128 (KMALLOC_MIN_SIZE 128)
    assert Model("x86_64", (6, 1)).vmalloc(4096).value.vm_struct_cache == "kmalloc-64"
    assert Model("x86_64", (6, 12)).vmalloc(4096).value.vm_struct_cache == "kmalloc-96"
    assert Model("arm64", (6, 1)).vmalloc(4096).value.vm_struct_cache == "kmalloc-128"
    plan = Model("x86_64", (6, 12)).vmalloc(3 << 20).value
    assert plan.kmalloc_objects == {"kmalloc-96": 2, "kmalloc-16": 1}


@pytest.mark.parametrize("arch, version, pool_cache", [
    # mm/mempool.c:mempool_create_node() kzalloc(72); verified: ksize(pool) 96 on x86 6.1/6.12
    # and arm64 6.12, 128 on arm64 6.1
    ("x86_64", (6, 1), "kmalloc-96"), ("x86_64", (6, 12), "kmalloc-96"),
    ("arm64", (6, 12), "kmalloc-96"), ("arm64", (6, 1), "kmalloc-128"),
])
def test_mempool_create(arch: str, version: tuple[int, int], pool_cache: str) -> None:
    m = Model(arch, version, ncpus=2)
    plan = m.mempool_create(16, "kmalloc", element_size=100).value
    assert plan.pool_cache == pool_cache
    assert plan.preallocated == 16
    # mm/mempool.c:mempool_init_node(): kmalloc_array_node(16, 8) = 128 bytes
    assert plan.elements_cache == "kmalloc-128"
    assert plan.element_backing == "kmalloc-128"     # kmalloc(100) on every kernel
    assert plan.kmalloc_objects[plan.element_backing] >= 16


def test_a_preempt_rt_mempool_t_holds_two_rt_mutex_spinlocks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's rt flavour: spinlock_t is an rt_mutex_base (32 B), so mempool_t is 120 B and
    comes from kmalloc-128 (measured on x86_64 and arm64 6.1, 6.12, 7.2; the model used to
    refuse every rt kernel); 5.10's rt patch set makes it an rt_mutex plus break_lock (48 B), so
    152 B, kmalloc-192.  An rt kernel the table has no value for is refused, by name."""
    from kmodlab.model import tables
    from kmodlab.model.errors import ModelError

    rt = Model("x86_64", (7, 2), flavour="rt").mempool_create(16, "kmalloc", element_size=100)
    assert rt.value.pool_cache == "kmalloc-128" and rt.exact
    assert Model("x86_64", (7, 2)).mempool_create(16, "kmalloc", element_size=100
                                                  ).value.pool_cache == "kmalloc-96"
    assert Model("arm64", (6, 1), flavour="rt").mempool_create(16, "kmalloc", element_size=100
                                                         ).value.pool_cache == (
        "kmalloc-128")
    assert Model("i386", (6, 1), flavour="rt").params.mempool_t_size == 64
    assert Model("x86_64", (5, 10), flavour="rt").mempool_create(
        16, "kmalloc", element_size=100).value.pool_cache == "kmalloc-192"
    assert Model("i386", (5, 10), flavour="rt").mempool_create(
        16, "kmalloc", element_size=100).value.pool_cache == "kmalloc-96"
    entry = tables.KCONFIG_OVERRIDES["CONFIG_PREEMPT_RT"]["MEMPOOL_T_SIZE"]
    unmeasured = {key: v for key, v in entry.values.items() if key != ("x86_64", "5.10")}
    monkeypatch.setitem(tables.KCONFIG_OVERRIDES["CONFIG_PREEMPT_RT"], "MEMPOOL_T_SIZE",
                        type(entry)(unmeasured, entry.source))
    with pytest.raises(ModelError, match="CONFIG_PREEMPT_RT=y changes MEMPOOL_T_SIZE"):
        Model("x86_64", (5, 10), flavour="rt")
    assert Model("x86_64", (6, 1), flavour="rt").params.mempool_t_size == 120


def test_mempool_kinds_and_use() -> None:
    m = Model("x86_64", (6, 12))
    assert m.mempool_create(4, "page", order=2).value.element_backing == "order-2 pages"
    assert m.mempool_create(4, "slab", cache_name="ap_pool").value.element_backing == "ap_pool"
    assert not m.mempool_create(0, "page").exact
    with pytest.raises(ModelError):
        m.mempool_create(4, "kmalloc")
    with pytest.raises(ModelError):
        m.mempool_create(4, "weird")
    # mm/mempool.c:mempool_alloc() tries the allocator first; the reserve stays full at min_nr
    use = m.mempool_alloc(4, allocs=10, frees=10).value
    assert (use.reserve, use.from_allocator, use.returned_to_allocator) == (4, 10, 10)
    dry = m.mempool_alloc(4, allocs=3, frees=2, allocator_fails=True).value
    assert (dry.reserve, dry.from_allocator, dry.returned_to_allocator) == (3, 0, 0)


def test_percpu() -> None:
    m = Model("x86_64", (6, 1), ncpus=2)
    a = m.alloc_percpu(4).value                   # alloc_percpu(int)
    assert (a.size, a.align, a.copies, a.total_bytes, a.valid) == (4, 4, 2, 8, True)
    assert m.alloc_percpu(5).value.size == 8      # mm/percpu.c: ALIGN(size, PCPU_MIN_ALLOC_SIZE)
    assert m.alloc_percpu(1, align=1).value.align == 4
    assert not m.alloc_percpu(32772).value.valid  # > PCPU_MIN_UNIT_SIZE
    assert not m.alloc_percpu(8, align=8192).value.valid
    assert not m.alloc_percpu(8, align=12).value.valid
    assert not m.alloc_percpu(0).value.valid
    # mm/percpu.c: small allocations use the populated first chunk; verified: Percpu in
    # /proc/meminfo did not change after alloc_percpu(int)
    p = m.percpu_meminfo_delta_kb(4)
    assert p.value == 0 and p.accepts(0) and not p.exact


@pytest.mark.parametrize("arch, version, header, asked, cache", [
    # struct devres header 40 B on x86, 128 B on arm64; devm_kzalloc(100) -> kmalloc(140) ->
    # kmalloc-192 on x86, kmalloc(228) -> kmalloc-256 on arm64; 6.12 passes
    # kmalloc_size_roundup(tot) (drivers/base/devres.c:alloc_dr())
    ("x86_64", (6, 1), 40, 140, "kmalloc-192"), ("x86_64", (6, 12), 40, 192, "kmalloc-192"),
    ("arm64", (6, 1), 128, 228, "kmalloc-256"), ("arm64", (6, 12), 128, 256, "kmalloc-256"),
])
def test_devres(arch: str, version: tuple[int, int], header: int, asked: int, cache: str) -> None:
    m = Model(arch, version)
    assert m.devres_header_size().value == header
    d = m.devm_kmalloc(100).value
    assert (d.total, d.kmalloc_size, d.cache) == (header + 100, asked, cache)
    big = m.devm_kmalloc(4000).value                  # verified devres_log "(4000 bytes)" entry
    assert big.cache == ("kmalloc-8k" if header == 128 else "kmalloc-4k")   # 4128 / 4040 bytes
    assert m.devm_kmalloc(0).value.zero_size and m.devm_kmalloc(0).value.cache is None
    # drivers/base/devres.c:release_nodes() walks in reverse; verified on the devres_log
    # tracepoint: REL ...(4000 bytes) then REL ...(100 bytes): newest first
    assert m.devres_release_order([100, 4000]) == [4000, 100]


def test_percpu_sum_over_possible_cpus() -> None:
    m = Model("x86_64", (6, 12), ncpus=2)
    assert m.percpu_sum([3, 4]).value == 7
    with pytest.raises(ModelError):
        m.percpu_sum([1, 2, 3])


def test_page_sizes_the_model_was_not_held_against_are_refused() -> None:
    """16 KiB pages are covered where Debian builds them (arm64 6.12, 7.2); 16 KiB on 6.1 (a
    kernel built with kconfig/pagesize-16k.config) and 64 KiB anywhere are refused by name."""
    from kmodlab.model.errors import ModelError
    from kmodlab.model.params import debian_kconfig

    assert Model("arm64", (7, 2), flavour="16k").params.page_size == 16384
    for series, shift in (("6.1", "14"), ("6.12", "16")):
        kconfig = {**debian_kconfig("arm64", series), "CONFIG_ARM64_PAGE_SHIFT": shift,
                   "CONFIG_PAGE_SHIFT": shift}
        version = tuple(int(n) for n in series.split("."))
        with pytest.raises(ModelError, match=f"PAGE_SIZE {1 << int(shift)}"):
            Model("arm64", version, kconfig)


# ----------------------------------------------------------------------------- ioremap
@pytest.mark.parametrize(("offset", "size", "page_offset", "area", "align"), [
    (0, 4096, 0, 8192, 4096),                  # one page plus the guard
    (100, 10000, 100, 16384, 16384),           # 3 pages: aligned to 4 (next power of two)
    (10100, 10000, 1908, 16384, 16384),        # 3 pages from inside the third page
    (20100, 10000, 3716, 20480, 16384),        # 4 pages
    (0, 262144, 0, 266240, 262144),            # 64 pages
    (0, 524288, 0, 528384, 524288),            # 128 pages: still exact everywhere
])
def test_ioremap_area_and_alignment(offset: int, size: int, page_offset: int, area: int,
                                    align: int) -> None:
    plan = Model("x86_64", "6.1").ioremap(offset, size)
    w = plan.value
    assert (w.page_offset, w.area_size, w.min_align, w.align_exact) == (
        page_offset, area, align, True)
    assert "IOREMAP_MAX_ORDER" in plan.rule and "guard" in plan.rule


def test_ioremap_above_128_pages_is_only_a_floor() -> None:
    """IOREMAP_MAX_ORDER is per arch above the generic 7 + PAGE_SHIFT: the model says at least."""
    w = Model("arm64", "6.12").ioremap(0, 1 << 20).value
    assert (w.min_align, w.align_exact, w.area_size) == (512 << 10, False, (1 << 20) + 4096)


def test_ioremap_with_16k_pages() -> None:
    """Offsets 100 and 10100 start in the same 16 KiB page: the check groups their lines."""
    m = Model("arm64", "6.12", flavour="16k")
    a, b = m.ioremap(100, 10000).value, m.ioremap(10100, 10000).value
    assert (a.page_offset, a.area_size) == (100, 32768)
    assert (b.page_offset, b.area_size) == (10100, 49152)
    assert (a.min_align, b.min_align) == (16384, 32768)


# ----------------------------------------------------------------------------- coherent DMA
def _dma(arch: str, series: str, size: int, cmdline: str = "", mask: int = 32):
    return Model(arch, series).dma_alloc_coherent(size, mask, cmdline).value


def test_dma_without_cma_takes_a_power_of_two_block() -> None:
    """x86_64 before 7.2 has no DMA CMA at all: cma= is not even a parameter."""
    w = _dma("x86_64", "6.1", 1050000, "cma=64M")
    assert (w.from_cma, w.pages, w.align_pages, w.gfp) == (False, 512, 512,
                                                          "GFP_KERNEL|GFP_DMA32")
    assert Model("x86_64", "6.1").cma_total_kb("cma=64M").value is None


def test_dma_from_cma_takes_exact_pages_above_one_page() -> None:
    w = _dma("arm64", "6.12", 1050000)                 # Debian arm64: 64 MiB of CMA
    assert (w.from_cma, w.pages, w.align_pages, w.gfp) == (True, 257, 256, "GFP_KERNEL|GFP_DMA")
    assert _dma("arm64", "6.12", 100).from_cma is False          # a page or less: buddy
    assert _dma("arm64", "6.12", 10000).pages == 3
    assert Model("arm64", "6.12").cma_total_kb().value == 65536


@pytest.mark.parametrize(("cmdline", "from_cma", "total"), [
    ("", False, 0), ("cma=16M", True, 16384), ("quiet cma=0", False, 0), ("cma=1G@0-4G", True,
                                                                          1 << 20)])
def test_cma_follows_the_command_line(cmdline: str, from_cma: bool, total: int) -> None:
    """7.2's amd64 config has DMA CMA with size 0: only cma= makes an area."""
    assert _dma("x86_64", "7.2", 10000, cmdline).from_cma is from_cma
    assert Model("x86_64", "7.2").cma_total_kb(cmdline).value == total


def test_dma_mask_picks_the_zone_flag() -> None:
    assert _dma("x86_64", "6.1", 100, mask=24).gfp == "GFP_KERNEL|GFP_DMA"
    assert _dma("x86_64", "6.1", 100, mask=64).gfp == "GFP_KERNEL"
    assert _dma("arm64", "6.1", 100, cmdline="cma=0", mask=32).gfp == "GFP_KERNEL|GFP_DMA"
    with pytest.raises(ModelError, match="CMA"):
        _dma("arm64", "6.1", 10000, mask=30)
