"""SLUB layout, slab order/objects, slabinfo counts and merging."""

from __future__ import annotations

import pytest

from kmodlab.model import MergeCandidate, Model, ModelError, SlabFlag

KERNELS = [("x86_64", (6, 1)), ("x86_64", (6, 12)), ("arm64", (6, 1)), ("arm64", (6, 12))]
IDS = ["x86_64-6.1", "x86_64-6.12", "arm64-6.1", "arm64-6.12"]


@pytest.mark.parametrize("arch, version", KERNELS, ids=IDS)
def test_custom_cache_sizes(arch: str, version: tuple[int, int]) -> None:
    # mm/slub.c:calculate_sizes(); verified on all 4 kernels: 100 -> 104, with ctor 112,
    # with SLAB_HWCACHE_ALIGN 128 (align 64); 200 -> 200
    m = Model(arch, version, ncpus=2)
    assert m.slab_size(100).value == 104
    assert m.slab_size(100, ctor=True).value == 112
    hw = m.slab_layout(100, flags="SLAB_HWCACHE_ALIGN").value
    assert (hw.size, hw.align) == (128, 64)
    assert m.slab_size(200).value == 200
    assert m.kmem_cache(100).value.ksize == 104


@pytest.mark.parametrize("arch, version", KERNELS, ids=IDS)
def test_custom_geometry_at_2_cpus(arch: str, version: tuple[int, int]) -> None:
    # mm/slub.c:calculate_order(); verified at 2 CPUs: 104 -> 39, 112 -> 36, 128 -> 32,
    # 200 -> 20 objects in one page
    m = Model(arch, version, ncpus=2)
    for size, objs in ((104, 39), (112, 36), (128, 32), (200, 20)):
        g = m.slab_geometry(size).value
        assert (g.objects, g.pages) == (objs, 1)


# Geometry (order/objects; docs/kernel-notes.md, "Slab order and objects per slab"): the
# cpus=2-3 column is verified on all four kernels; the others follow mm/slub.c:calculate_order().
GEOMETRY = {
    8: ["0/512"] * 5, 16: ["0/256"] * 5, 32: ["0/128"] * 5, 64: ["0/64"] * 5, 96: ["0/42"] * 5,
    128: ["0/32"] * 5,
    192: ["0/21", "0/21", "0/21", "0/21", "1/42"],
    256: ["0/16", "0/16", "0/16", "1/32", "1/32"],
    512: ["0/8", "1/16", "1/16", "2/32", "2/32"],
    1024: ["1/8", "2/16", "2/16", "3/32", "3/32"],
    2048: ["2/8", "3/16", "3/16", "3/16", "3/16"],
    4096: ["3/8"] * 5, 8192: ["3/4"] * 5,
}
CPU_COLUMNS = (1, 2, 4, 8, 16)


@pytest.mark.parametrize("arch, version", KERNELS, ids=IDS)
@pytest.mark.parametrize("size", sorted(GEOMETRY))
def test_kmalloc_geometry_table(arch: str, version: tuple[int, int], size: int) -> None:
    for ncpus, cell in zip(CPU_COLUMNS, GEOMETRY[size]):
        g = Model(arch, version, ncpus=ncpus).slab_geometry(size).value
        assert f"{g.order}/{g.objects}" == cell, f"{ncpus} CPUs"


def test_kmalloc_caches_carry_the_geometry() -> None:
    # Verified: kmalloc-8k is o3/4 and kmalloc-512 o1/16 at 2 CPUs
    m = Model("x86_64", (6, 12), ncpus=2)
    assert (m.kmalloc_cache("kmalloc-8k").geometry.order,
            m.kmalloc_cache("kmalloc-8k").geometry.objects) == (3, 4)
    assert m.kmalloc_cache("kmalloc-cg-512").geometry.objects == 16


@pytest.mark.parametrize("ncpus, min_objects", [(1, 8), (2, 12), (3, 12), (4, 16), (7, 16),
                                                (8, 20), (15, 20), (16, 24), (31, 24)])
def test_min_objects(ncpus: int, min_objects: int) -> None:
    # mm/slub.c:calculate_order(): min_objects = 4 * (fls(nr_cpus) + 1)
    assert Model("x86_64", (6, 1), ncpus=ncpus).params.min_objects == min_objects


def test_61_and_612_orders_differ_only_in_the_documented_window() -> None:
    # calc_slab_order() before and after the 6.7 rework: identical for every s->size <= 8192;
    # differ for 10928..12280
    # (6.1 order 2 with 1 object, 6.12 order 3 with 2 objects)
    for ncpus in (1, 2, 4, 16):
        a, b = Model("x86_64", (6, 1), ncpus=ncpus), Model("x86_64", (6, 12), ncpus=ncpus)
        for size in range(8, 8193, 8):
            assert a.slab_order(size).value == b.slab_order(size).value
        g61, g612 = a.slab_geometry(11000).value, b.slab_geometry(11000).value
        assert (g61.order, g61.objects) == (2, 1) and (g612.order, g612.objects) == (3, 2)
        for edge in (10920, 12288):
            assert a.slab_order(edge).value == b.slab_order(edge).value


def test_layout_details() -> None:
    m = Model("x86_64", (6, 12), ncpus=2)
    plain = m.slab_layout(100).value
    assert plain.offset == 48 and not plain.freeptr_outside   # ALIGN_DOWN(100 / 2, 8)
    ctor = m.slab_layout(100, ctor=True).value
    assert ctor.offset == 104 and ctor.freeptr_outside
    rcu = m.slab_layout(100, flags="SLAB_TYPESAFE_BY_RCU").value
    assert rcu.size == 112                      # calculate_sizes(): free pointer outside, +8
    # 6.12 kmem_cache_args.freeptr_offset keeps an RCU cache's pointer inside
    assert m.slab_layout(100, flags="SLAB_TYPESAFE_BY_RCU", freeptr_offset=0).value.size == 104
    assert m.slab_layout(24, align=32).value.size == 32
    # debug flags change the layout (mm/slub.c:calculate_sizes()): red zone adds words,
    # SLAB_STORE_USER adds two struct track (32 B each)
    rz = m.slab_layout(100, flags="SLAB_RED_ZONE").value
    assert rz.red_left_pad == 8 and rz.size == 104 + 8 + 8
    assert m.slab_layout(104, flags="SLAB_STORE_USER").value.size == 104 + 64
    assert m.slab_layout(100, flags="SLAB_POISON").value.size == 112


@pytest.mark.parametrize("flags", ["SLAB_NOLEAKTRACE", "SLAB_NO_MERGE"])
def test_separate_cache_flags_keep_the_layout(flags: str) -> None:
    # Both are in SLAB_NEVER_MERGE (mm/slab_common.c); verified: SLAB_NO_MERGE (6.12) and
    # SLAB_NOLEAKTRACE leave the layout alone
    m = Model("x86_64", (6, 12), ncpus=2)
    assert m.slab_size(100, flags=flags).value == 104
    assert not m.would_merge(100, flags=flags).value.can_merge


def test_no_merge_flag_does_not_exist_in_61() -> None:
    with pytest.raises(ModelError, match="6.5"):
        Model("x86_64", (6, 1)).slab_size(100, flags="SLAB_NO_MERGE")
    with pytest.raises(ModelError, match="unknown slab flag"):
        Model("x86_64", (6, 1)).slab_size(100, flags="SLAB_HWCACHE")


def test_sysfs_alias_names() -> None:
    # Verified: ap_plain100 and ap_plain100b link to :0000104 (mm/slub.c:sysfs_slab_alias());
    # mm/slub.c:create_unique_id(): SLAB_ACCOUNT gives ":A-0000104"
    m = Model("x86_64", (6, 1), ncpus=2)
    assert m.sysfs_alias_name(100).value == ":0000104"
    assert m.sysfs_alias_name(100, flags="SLAB_ACCOUNT").value == ":A-0000104"
    assert m.sysfs_alias_name(100, flags="SLAB_RECLAIM_ACCOUNT|SLAB_CACHE_DMA").value == ":da-0000104"
    assert m.kmem_cache(100).value.sysfs_name == ":0000104"
    assert m.kmem_cache(100, ctor=True).value.sysfs_name is None


def test_merging() -> None:
    m = Model("x86_64", (6, 1), ncpus=2)
    existing = [
        MergeCandidate("kmalloc-128", 128),                 # kmalloc caches never qualify
        MergeCandidate("ap_plain100", 104),
        MergeCandidate("ap_acct", 104, SlabFlag.ACCOUNT),
        MergeCandidate("with_ctor", 104, mergeable=False),
    ]
    # mm/slab_common.c:find_mergeable(); verified: a second 100-byte cache returns the same one
    v = m.would_merge(100, existing=existing).value
    assert v.can_merge and v.target == "ap_plain100" and v.unique_id == ":0000104"
    assert m.would_merge(97, existing=existing).value.target == "ap_plain100"   # ALIGN -> 104
    assert m.would_merge(96, existing=existing).value.target is None            # 96 != 104
    # SLAB_ACCOUNT only restricts the choice (SLAB_MERGE_SAME), it does not prevent merging
    acct = m.would_merge(100, flags="SLAB_ACCOUNT", existing=existing).value
    assert acct.can_merge and acct.target == "ap_acct"
    # ctor, usercopy region, NEVER_MERGE flags prevent it (mm/slab_common.c:slab_unmergeable())
    assert not m.would_merge(100, ctor=True, existing=existing).value.can_merge
    assert not m.would_merge(100, usersize=100, existing=existing).value.can_merge
    assert not m.would_merge(100, flags="SLAB_TYPESAFE_BY_RCU", existing=existing).value.can_merge
    assert m.would_merge(120, existing=[MergeCandidate("kmalloc-128", 128)]).value.target is None
    # HWCACHE alignment: 100 -> 128 with align 64; a 128 cache is a match
    hw = m.would_merge(100, flags="SLAB_HWCACHE_ALIGN", existing=[MergeCandidate("x", 128)])
    assert hw.value.target == "x"
    # slab_nomerge on the command line
    assert not Model("x86_64", (6, 1), slab_nomerge=True).would_merge(100).value.can_merge


def test_usersize_blocks_merge_only_with_hardened_usercopy_on_612() -> None:
    # mm/slab_common.c: 6.12 zeroes usersize without CONFIG_HARDENED_USERCOPY
    kc = {"CONFIG_SLUB": "y", "CONFIG_SLAB_MERGE_DEFAULT": "y"}
    assert Model("x86_64", (6, 12), kc).would_merge(100, usersize=8).value.can_merge
    assert not Model("x86_64", (6, 1), kc).would_merge(100, usersize=8).value.can_merge


def test_slabinfo_counts() -> None:
    # mm/slub.c:get_slabinfo() counts cpu slabs as active; verified: 5 objects from a
    # 39-per-slab cache show "39 39"; after writing 1 to shrink, "5 39"
    m = Model("x86_64", (6, 1), ncpus=1)
    c = m.slabinfo_after_alloc(5, 104).value
    assert (c.active_objs, c.num_objs, c.num_slabs) == (39, 39, 1)
    s = m.slabinfo_after_alloc(5, 104, shrunk=True).value
    assert (s.active_objs, s.num_objs) == (5, 39)
    assert m.slabs_for_objects(40, 104).value == 2 and m.slabs_for_objects(0, 104).value == 0
    two = Model("x86_64", (6, 1), ncpus=2).slabs_for_objects(40, 104)
    assert not two.exact and two.bound == (2, 3)


def test_partial_list_limits() -> None:
    m = Model("x86_64", (6, 12), ncpus=2)
    info = m.kmem_cache(100).value
    # mm/slub.c: min_partial = clamp(ilog2(104) / 2, 5, 10) = 5; cpu_partial 120 objects ->
    # DIV_ROUND_UP(240, 39) = 7 slabs
    assert info.min_partial == 5 and info.cpu_partial_slabs == 7
    assert m.kmem_cache(8192).value.min_partial == 6


# ----------------------------------------------------------------------------- 7.2: sheaves

def test_7_2_sheaf_capacity_fills_a_kmalloc_bucket() -> None:
    """mm/slub.c:calculate_sheaf_capacity() (7.2): 60/26/12/4 by s->size, grown to fill the
    kmalloc bucket of struct slab_sheaf; debug caches and NOLEAKTRACE ones have none."""
    m = Model("x86_64", "7.2")
    assert [m.sheaf_capacity(s) for s in (104, 256, 1024, 4096)] == [60, 28, 12, 4]
    assert m.sheaf_capacity(104, "SLAB_RED_ZONE") == 0
    assert m.sheaf_capacity(104, "SLAB_NOLEAKTRACE") == 0
    assert Model("x86_64", "6.12").sheaf_capacity(104) == 0       # no sheaves before 7.0
    assert Model("x86_64", "7.2").params.cpu_partial is False


def test_7_2_objects_come_a_sheaf_at_a_time_and_leave_from_its_top() -> None:
    """Measured on 7.2.13 x86_64 (kmodlab check kmem_cache/ctor: size 100 with a ctor, 50
    objects): 2 slabs, at most 26 of ours in one (60 taken: 36 + 24; the last 50 handed out)."""
    m = Model("x86_64", "7.2")
    size = m.kmem_cache(100, ctor=True).value.size
    assert m.objects_per_slab(size).value == 36 and m.sheaf_capacity(size) == 60
    assert m.slabs_for_objects(50, size).value == 2
    assert m.live_objects_per_slab(50, size).value == (26, 24)
    counts = m.slabinfo_after_alloc(50, size).value
    assert (counts.active_objs, counts.num_objs, counts.num_slabs) == (60, 72, 2)
    # without sheaves (6.12, or a debug cache on 7.2) the CPU slab's free slots count as active
    assert m.live_objects_per_slab(50, size, "SLAB_RED_ZONE") is None
    old = Model("x86_64", "6.12")
    assert old.live_objects_per_slab(50, size) is None
    assert old.slabinfo_after_alloc(50, size).value.active_objs == 72


def test_7_2_structures_grew() -> None:
    """7.2.13: struct vm_struct 80 B (still kmalloc-96), devres header 56 B on x86."""
    assert Model("x86_64", "7.2").params.vm_struct_size == 80
    assert Model("x86_64", "7.2").devres_header_size().value == 56
    assert Model("x86_64", "6.12").devres_header_size().value == 40
    assert Model("arm64", "7.2").devres_header_size().value == 128
