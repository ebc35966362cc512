"""Every capture under tests/fixtures/proc/<arch>-<series>/ parses, and parses sensibly."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from kmodlab.observe import (
    parse_buddyinfo,
    parse_dmesg,
    parse_meminfo,
    parse_slabinfo,
    parse_vmallocinfo,
)
from kmodlab.observe.dmesg import find_events

try:  # tests/unit is a plain directory today; keep working if it becomes a package
    from ._captures import KINDS, capture_dirs, capture_files, capture_kconfig, fixture_id, kind_of
except ImportError:
    from _captures import KINDS, capture_dirs, capture_files, capture_kconfig, fixture_id, kind_of  # type: ignore[no-redef]



def test_there_are_captures_for_every_arch_and_series() -> None:
    names = {d.name for d in capture_dirs()}
    assert {"x86_64-6.1", "x86_64-6.12", "arm64-6.1", "arm64-6.12"} <= names


@pytest.mark.parametrize("path", capture_files(), ids=fixture_id)
def test_every_capture_file_has_a_known_kind(path: Path) -> None:
    assert kind_of(path) in KINDS, f"name captures <kind>[-x].txt with kind in {KINDS}"


@pytest.mark.parametrize("path", capture_files("slabinfo"), ids=fixture_id)
def test_slabinfo_capture(path: Path) -> None:
    info = parse_slabinfo(path.read_text())
    assert len(info) > 10
    assert any(name.startswith("kmalloc-") for name in info)
    for cache in info.values():
        assert cache.active_slabs == cache.num_slabs          # always equal under SLUB
        assert (cache.limit, cache.batchcount, cache.sharedfactor, cache.sharedavail) == (0,) * 4
        assert cache.objperslab * cache.objsize <= cache.pagesperslab * 4096


@pytest.mark.parametrize("path", capture_files("buddyinfo"), ids=fixture_id)
def test_buddyinfo_capture(path: Path) -> None:
    info = parse_buddyinfo(path.read_text(), nr_orders=11)
    assert info.free_pages() > 0
    assert all(node == 0 for node, _ in info)


@pytest.mark.parametrize("path", capture_files("vmallocinfo"), ids=fixture_id)
def test_vmallocinfo_capture(path: Path) -> None:
    info = parse_vmallocinfo(path.read_text())
    assert len(info) > 0
    for entry in info:
        assert entry.size % 4096 == 0
        assert entry.numa_consistent, entry
        if "vmalloc" in entry.flags and entry.pages:
            assert entry.size == (entry.pages + 1) * 4096   # one guard page


@pytest.mark.parametrize("path", capture_files("meminfo"), ids=fixture_id)
def test_meminfo_capture(path: Path) -> None:
    info = parse_meminfo(path.read_text())
    assert info.kb("MemTotal") > info.kb("MemFree") > 0
    kconfig = capture_kconfig(path)   # None: Debian's kernel, which has hugetlbfs
    if kconfig is None or kconfig.get("CONFIG_HUGETLB_PAGE") == "y":
        assert "HugePages_Total" in info.unitless
    else:
        assert "HugePages_Total" not in info.unitless
    assert info.kb("Slab") == info.kb("SReclaimable") + info.kb("SUnreclaim")


@pytest.mark.parametrize("path", capture_files("dmesg"), ids=fixture_id)
def test_dmesg_capture(path: Path) -> None:
    lines = parse_dmesg(path.read_text())
    assert lines and all(line.timestamp is not None for line in lines)
    # Timestamps only go back where sched_clock changes source: x86 starts on jiffies and
    # restarts on the TSC (arch/x86/kernel/tsc.c:tsc_early_init(), seen in real captures).
    steps_back = [b for a, b in itertools.pairwise(lines) if b.timestamp < a.timestamp]
    assert all(line.text.startswith("clocksource: tsc-early") for line in steps_back)
    for event in find_events(path.read_text()):
        assert event.lines and event.title
