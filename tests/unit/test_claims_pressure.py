"""The GFP-under-pressure judges, on the values kml_pressure printed on x86_64 6.1 (a real run,
`kmodlab claims --measure --claim gfp-atomic-uses-reserves`), and on those values spoiled."""

from __future__ import annotations

import copy

import pytest

from kmodlab.claims.catalog import _probe, load_catalog
from kmodlab.claims.judges import JUDGES
from kmodlab.claims.judges.base import NotMeasured
from kmodlab.claims.measure import REPORTS_TEST
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.errors import ConfigError
from kmodlab.model import Model

REAL = {
    "fill_nowait": {"pages": 74692, "file_pages_before": 18354, "file_pages": 18354},
    "take_atomic": {"pages": 446},
    "warn": {"failed": 1},
    "reclaim": {"pages": 2048, "asked": 2048, "file_pages": 14963},
    "nofail": {"tried": 1, "got": 1},
    "zone0": {"name": "DMA", "min": 22, "lowmem_reserve": 443, "managed": 3840,
              "free_nowait": 463, "boost_nowait": 0, "cma_nowait": 0, "free_atomic": 451,
              "boost_atomic": 0, "cma_atomic": 0},
    "zone1": {"name": "DMA32", "min": 662, "lowmem_reserve": 0, "managed": 116484,
              "free_nowait": 657, "boost_nowait": 512, "cma_nowait": 0, "free_atomic": 223,
              "boost_atomic": 1024, "cma_atomic": 0},
    REPORTS_TEST: {"module_taint": 2, "alloc_failure": 1},
}
TARGET = ModelTarget("x86_64", "6.1", Model("x86_64", "6.1"), None)


def judge(name: str, values: dict):
    obs = Observations("r", "x86_64-6.1", 1, probes={"gfp_pressure": values})
    return JUDGES[name].measured(TARGET, obs, probe="gfp_pressure")


@pytest.mark.parametrize("name", ["gfp_atomic_uses_reserves", "gfp_atomic_never_reclaims",
                                  "gfp_nowarn_silences"])
def test_the_real_run_is_true_and_agrees_with_the_model(name: str) -> None:
    found = judge(name, REAL)
    assert found is not None and found.verdict == "true" and found.agrees
    assert JUDGES[name].model(TARGET).verdict == "true"


def test_atomic_stopping_above_its_floor_disagrees_with_the_model() -> None:
    values = copy.deepcopy(REAL)
    values["zone1"]["free_atomic"] = 250        # the 6.1 floor for min 662 is 249
    found = judge("gfp_atomic_uses_reserves", values)
    assert found is not None and not found.agrees


def test_atomic_getting_nothing_below_nowait_is_false() -> None:
    values = copy.deepcopy(REAL)
    values["take_atomic"]["pages"] = 0
    found = judge("gfp_atomic_uses_reserves", values)
    assert found is not None and found.verdict == "false"


def test_a_page_cache_reclaimed_under_nowait_is_false() -> None:
    values = copy.deepcopy(REAL)
    values["fill_nowait"]["file_pages"] = 9000
    found = judge("gfp_atomic_never_reclaims", values)
    assert found is not None and found.verdict == "false"


@pytest.mark.parametrize("warnings", [0, 2])
def test_nowarn_needs_exactly_the_one_warning(warnings: int) -> None:
    values = copy.deepcopy(REAL)
    values[REPORTS_TEST]["alloc_failure"] = warnings
    found = judge("gfp_nowarn_silences", values)
    assert found is not None and found.verdict == "false"


def test_a_probe_that_did_not_run_is_not_judged() -> None:
    for name in ("gfp_atomic_uses_reserves", "gfp_atomic_never_reclaims", "gfp_nowarn_silences"):
        assert judge(name, {}) is None


def test_the_pressure_probe_prepares_and_removes_its_page_cache() -> None:
    probe = load_catalog().probes["gfp_pressure"]
    assert probe.module == "kml_pressure"
    assert any("mount -t ext2 /dev/ram0" in c for c in probe.setup)
    assert probe.teardown and "rmmod brd" in probe.teardown[-1]


def test_slabinfo_lists_cache_names_only() -> None:
    assert _probe("p", {"family": "kmem_cache", "slabinfo": ["kml_cache", "kmalloc-128"]}
                  ).slabinfo == ("kml_cache", "kmalloc-128")
    with pytest.raises(ConfigError, match="cache names"):
        _probe("p", {"family": "kmem_cache", "slabinfo": ["x; rm -rf /"]})


# x86_64 7.2 (a real run): GFP_NOWAIT's growing per-CPU refills took DMA32 to 93 free pages,
# below GFP_ATOMIC's floor (248): GFP_ATOMIC got nothing.  The model says "depends" there.
REAL_72 = {
    "take_atomic": {"pages": 0},
    "zone0": {"name": "DMA", "min": 22, "lowmem_reserve": 446, "free_nowait": 451,
              "cma_nowait": 0, "free_atomic": 451, "cma_atomic": 0},
    "zone1": {"name": "DMA32", "min": 654, "lowmem_reserve": 0, "free_nowait": 93,
              "cma_nowait": 0, "free_atomic": 93, "cma_atomic": 0},
}


def test_where_refills_grow_the_reserve_is_luck() -> None:
    target = ModelTarget("x86_64", "7.2", Model("x86_64", "7.2"), None)
    obs = Observations("r", "x86_64-7.2", 1, probes={"gfp_pressure": REAL_72})
    judge_ = JUDGES["gfp_atomic_uses_reserves"]
    found = judge_.measured(target, obs, probe="gfp_pressure")
    assert found is not None and found.verdict == "depends" and found.agrees
    assert judge_.model(target).verdict == "depends"
    assert judge_.model(TARGET).verdict == "true"       # 6.1 refills take one batch


def test_a_probe_names_only_known_guest_tools() -> None:
    assert _probe("p", {"module": "kml_bigalloc", "tools": ["kml_fragment"]}).tools == \
        ("kml_fragment",)
    with pytest.raises(ConfigError, match="unknown guest tool"):
        _probe("p", {"module": "kml_bigalloc", "tools": ["vmstat"]})


def test_large_buffer_judge_on_a_real_shape_of_values() -> None:
    obs = Observations("r", "x86_64-6.1", 1, probes={
        "large_fragmented": {"blocks": {"free_pages": 50000, "large_blocks": 0, "largest": 3,
                                        "order": 9},
                             "contiguous": {"ok": 0, "size": 2 << 20},
                             "vmalloc": {"ok": 1, "size": 2 << 20}},
        "large_compacted": {"blocks": {"free_pages": 50000, "large_blocks": 40, "largest": 10,
                                       "order": 9},
                            "contiguous": {"ok": 1, "size": 2 << 20},
                            "vmalloc": {"ok": 1, "size": 2 << 20}}})
    judge_ = JUDGES["large_contiguous_prone_to_failure"]
    args = {"order": 9, "fragmented": "large_fragmented", "compacted": "large_compacted"}
    found = judge_.measured(TARGET, obs, **args)
    assert found is not None and found.verdict == "true" and found.agrees
    # a block came although none of the order was free: the measurement contradicts the rule
    obs.probes["large_fragmented"]["contiguous"]["ok"] = 1
    found = judge_.measured(TARGET, obs, **args)
    assert found is not None and found.verdict == "false" and not found.agrees
    # a free block of the order was left: the attempt tested nothing, so no measurement
    obs.probes["large_fragmented"]["blocks"]["largest"] = 9
    with pytest.raises(NotMeasured, match="did not meet fragmented memory"):
        judge_.measured(TARGET, obs, **args)


# kml_pressure's GFP_KERNEL phases as measured on 2026-12-06 (`kmodlab claims --measure --claim
# gfp-noretry-gives-up-at-once`): x86_64 6.1, where __GFP_NORETRY reclaimed and then gave up,
# and arm64 7.2, where kswapd had freed enough that it never had to reclaim.
NORETRY_61 = {
    "fill_nowait": {"file_pages": 19233, "file_pages_before": 19233, "pages": 73416},
    "reclaim": {"asked": 2048, "direct_steals": 104, "file_pages": 16324, "pages": 2048},
    "noretry": {"asked": 2048, "direct_steals": 144, "file_pages": 16177,
                "file_pages_before": 16324, "pages": 67},
}
NORETRY_ARM64_72 = {
    "fill_nowait": {"file_pages": 19090, "file_pages_before": 19090, "pages": 56081},
    "reclaim": {"asked": 2048, "direct_steals": 0, "file_pages": 17556, "pages": 2048},
    "noretry": {"asked": 2048, "direct_steals": 0, "file_pages": 17044,
                "file_pages_before": 17556, "pages": 2048},
}


def test_noretry_reclaiming_before_it_gives_up_is_false_and_agrees() -> None:
    found = judge("gfp_noretry_gives_up_at_once", NORETRY_61)
    assert found is not None and found.verdict == "false" and found.agrees
    assert "144" in found.answer and "67 of 2048" in found.answer
    assert JUDGES["gfp_noretry_gives_up_at_once"].model(TARGET).verdict == "false"


def test_noretry_getting_nothing_is_true_and_disagrees() -> None:
    values = copy.deepcopy(NORETRY_61)
    values["noretry"]["pages"] = 0
    found = judge("gfp_noretry_gives_up_at_once", values)
    assert found is not None and found.verdict == "true" and not found.agrees


def test_noretry_that_never_had_to_reclaim_is_not_measured() -> None:
    with pytest.raises(NotMeasured, match="without reclaiming"):
        judge("gfp_noretry_gives_up_at_once", NORETRY_ARM64_72)
    values = copy.deepcopy(NORETRY_61)
    values["noretry"]["direct_steals"] = -1                 # no vm event counters
    with pytest.raises(NotMeasured, match="VM_EVENT_COUNTERS"):
        judge("gfp_noretry_gives_up_at_once", values)


def test_vmstat_pages_column_is_objects_per_slab() -> None:
    """The x86_64 6.1 measurement: vmstat -m's Pages beside /proc/slabinfo at the same moment."""
    row = {"active_slabs": 2, "num": 50, "objperslab": 36, "pages": 36, "pagesperslab": 1,
           "size": 112, "total": 72}
    obs = Observations("r", "x86_64-6.1", 1,
                       probes={"slab_waste_tool": {"vmstat -m kml_cache": row}})
    judge_ = JUDGES["vmstat_pages_column"]
    found = judge_.measured(TARGET, obs, probe="slab_waste_tool", cache="kml_cache")
    assert found is not None and found.verdict == "false" and found.agrees
    assert judge_.model(TARGET, size=100, count=50).value == "Pages 36"
    obs.probes["slab_waste_tool"]["vmstat -m kml_cache"] = {**row, "pages": 2}
    found = judge_.measured(TARGET, obs, probe="slab_waste_tool", cache="kml_cache")
    assert found is not None and found.verdict == "true" and not found.agrees
    obs.probes["slab_waste_tool"]["vmstat -m kml_cache"] = {**row, "objperslab": 2}
    with pytest.raises(NotMeasured):
        judge_.measured(TARGET, obs, probe="slab_waste_tool", cache="kml_cache")
