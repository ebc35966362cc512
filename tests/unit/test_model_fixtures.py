"""The model against every capture in tests/fixtures/proc/<arch>-<series>/.

Real captures from booted guests are dropped into those directories; these tests then check the
model's kmalloc geometry, cache set and page-order count against what the kernel printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.model import Model
from kmodlab.observe import parse_buddyinfo, parse_slabinfo, parse_vmallocinfo

try:  # tests/unit is a plain directory today; keep working if it becomes a package
    from ._captures import arch_series, capture_files, capture_kconfig, capture_ncpus, fixture_id
except ImportError:
    from _captures import arch_series, capture_files, capture_kconfig, capture_ncpus, fixture_id  # type: ignore[no-redef]


def model_for(path: Path) -> Model:
    arch, series = arch_series(path)
    return Model(arch, series, capture_kconfig(path), ncpus=capture_ncpus(path))


@pytest.mark.parametrize("path", capture_files("slabinfo"), ids=fixture_id)
def test_kmalloc_lines_match_model(path: Path) -> None:
    m = model_for(path)
    info = parse_slabinfo(path.read_text())
    predicted = m.kmalloc_caches().value
    seen = {n: c for n, c in info.items() if n in predicted}
    assert seen, "capture has no kmalloc caches"
    for name, cache in seen.items():
        want = predicted[name]
        got = (cache.objsize, cache.objperslab, cache.pagesperslab)
        assert got == (want.size, want.geometry.objects, want.geometry.pages), name


@pytest.mark.parametrize("path", capture_files("slabinfo"), ids=fixture_id)
def test_kmalloc_cache_set_matches_model(path: Path) -> None:
    m = model_for(path)
    captured = {n for n in parse_slabinfo(path.read_text())
                if n.startswith("kmalloc-") and n[len("kmalloc-"):][0].isdigit()}
    predicted = {n for n, c in m.kmalloc_caches().value.items() if c.type == "normal"}
    assert captured == predicted


@pytest.mark.parametrize("path", capture_files("buddyinfo"), ids=fixture_id)
def test_buddyinfo_has_the_models_orders(path: Path) -> None:
    m = model_for(path)
    info = parse_buddyinfo(path.read_text())
    assert info.nr_orders == m.constant("NR_PAGE_ORDERS").value
    zone = m.preferred_zone(z for _, z in info)
    assert (0, zone) in info


@pytest.mark.parametrize("path", capture_files("vmallocinfo"), ids=fixture_id)
def test_vmalloc_lines_match_model(path: Path) -> None:
    m = model_for(path)
    for entry in parse_vmallocinfo(path.read_text()):
        if "vmalloc" not in entry.flags or not entry.pages:
            continue
        plan = m.vmalloc(entry.pages * m.PAGE_SIZE).value
        assert entry.size == plan.areas[0].size
        assert ("vpages" in entry.flags) == ("vpages" in plan.areas[0].flags)
