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
