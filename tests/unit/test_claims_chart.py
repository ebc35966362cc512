"""Waste chart data (pure), its renderers, and the slab captures behind merge predictions."""

from __future__ import annotations

import builtins
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kmodlab.claims import chart
from kmodlab.claims.captures import SlabCapture, parse_aliases, parse_unique_id
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import all_targets
from kmodlab.claims.waste import measured_points, same_as, smallest_slots, to_csv, waste_series
from kmodlab.errors import ConfigError
from kmodlab.model import SlabFlag
from kmodlab.observe import parse_slabinfo

# The four kernels these tests were written against (7.2's kmalloc classes are 6.12's).
FOUR = ("6.1", "6.12")


def four(targets):
    """x86_64 and arm64 on 6.1 and 6.12, in all_targets() order."""
    return [t for t in targets if t.series in FOUR and t.arch in ("x86_64", "arm64")]


@pytest.fixture(scope="module")
def series():
    return [waste_series(t) for t in four(all_targets(use_cache=False))]


def test_series_cover_1_to_8192(series) -> None:
    assert [s.label for s in series] == ["x86_64 6.1", "x86_64 6.12", "arm64 6.1", "arm64 6.12"]
    for s in series:
        assert s.sizes == tuple(range(1, 8193)) and len(s.allocated) == 8192
        assert s.config == "Debian defaults"
        assert min(s.waste_bytes) == 0 and all(w >= 0 for w in s.waste_bytes)
        assert all(0 <= p < 100 for p in s.waste_percent)


def test_series_values(series) -> None:
    x86, _, arm61, _ = series
    assert x86.waste_bytes[0] == 7 and x86.waste_percent[0] == 87.5
    assert arm61.waste_bytes[0] == 127
    assert x86.waste_bytes[159] == 32 and arm61.waste_bytes[159] == 96     # kmalloc(160)
    assert x86.waste_bytes[4096] == 8192 - 4097
    # Above the smallest class the slot is never twice the request or more.
    assert max(x86.waste_percent[8:]) < 50 and max(arm61.waste_percent[128:]) < 50


def test_identical_series_are_named(series) -> None:
    assert same_as(series) == {"x86_64 6.12": "x86_64 6.1", "arm64 6.12": "x86_64 6.1"}


def test_smallest_slots_are_read_from_the_series() -> None:
    """The subtitle names every kernel by its smallest slot (it once hard-coded "arm64 6.1",
    wrong as soon as arm64 5.10 joined with the same 128 bytes)."""
    targets = [t for t in all_targets(use_cache=False)
               if t.arch == "arm64" and t.series in ("5.10", "6.1", "6.12")]
    text = smallest_slots([waste_series(t, range(1, 9)) for t in targets])
    assert text == "8 B on arm64 6.12; 128 B on arm64 5.10, arm64 6.1"


def test_measured_points_compare_with_the_model() -> None:
    target = four(all_targets(use_cache=False))[2]     # arm64 6.1
    obs = Observations("r", "arm64-6.1", 1, probes={"kmalloc_sweep": {
        "kmalloc_1_kernel": {"allocated": 1, "ksize": 128},
        "kmalloc_160_kernel": {"allocated": 1, "ksize": 192},      # wrong on purpose
        "kmalloc_9000_kernel": {"allocated": 1, "ksize": 16384},   # beyond the chart
        "kmalloc_constants": {"KMALLOC_MIN_SIZE": 128}}})
    points = measured_points(target, obs)
    assert [(p.size, p.ksize, p.model_ksize, p.agrees) for p in points] == [
        (1, 128, 128, True), (160, 192, 256, False)]
    assert points[0].waste_bytes == 127


def test_csv(series) -> None:
    lines = to_csv(series[:2]).splitlines()
    assert lines[0] == ("size,x86_64 6.1 ksize,x86_64 6.1 waste_bytes,x86_64 6.1 waste_percent,"
                        "x86_64 6.12 ksize,x86_64 6.12 waste_bytes,x86_64 6.12 waste_percent")
    assert lines[160] == "160,192,32,16.67,192,32,16.67"
    assert len(lines) == 8193


def test_svg_needs_no_matplotlib(series, tmp_path: Path) -> None:
    out = chart.render(series, [], tmp_path / "waste.svg")
    root = ET.fromstring(out.read_text())
    polylines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(polylines) == 2 * len(series)
    assert "x86_64 6.12 (= x86_64 6.1)" in out.read_text()
    html = chart.render(series, [], tmp_path / "waste.html")
    assert html.read_text().startswith("<!doctype html>")


def test_png_without_matplotlib_says_how_to_install(series, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ConfigError, match=r"kmodlab\[charts\].*waste.svg"):
        chart.render(series, [], tmp_path / "waste.png")


def test_unknown_suffix(series, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use .png"):
        chart.render(series, [], tmp_path / "waste.gif")


def test_png(series, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = four(all_targets(use_cache=False))[0]
    obs = Observations("r", "x86_64-6.1", 1, probes={"kmalloc_sweep": {
        "kmalloc_160_kernel": {"allocated": 1, "ksize": 192},
        "kmalloc_33_kernel": {"allocated": 1, "ksize": 32}}})   # wrong: drawn as a red X
    out = chart.render(series, measured_points(target, obs), tmp_path / "waste.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- captures
SLABINFO = """\
slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
ext4_inode_cache    10     10   1024    8    2 : tunables    0    0    0 : slabdata      2      2      0
new_104             39     39    104   39    1 : tunables    0    0    0 : slabdata      1      1      0
old_104             39     39    104   39    1 : tunables    0    0    0 : slabdata      1      1      0
"""


def test_unique_ids() -> None:
    assert parse_unique_id(":0000104") == (104, SlabFlag.NONE)
    assert parse_unique_id(":A-0000104") == (104, SlabFlag.ACCOUNT)
    assert parse_unique_id(":aA-0004032") == (4032, SlabFlag.RECLAIM_ACCOUNT | SlabFlag.ACCOUNT)
    assert parse_unique_id("kmalloc-64") is None


def test_merge_candidates_are_oldest_first() -> None:
    aliases = parse_aliases("new_104 :0000104\nold_104 ../slab/:0000104\n"
                            "alias_104 :0000104\nacct :A-0000104\n")
    assert aliases["old_104"] == ":0000104"
    capture = SlabCapture("r", parse_slabinfo(SLABINFO), aliases, "now")
    cands = capture.merge_candidates()
    # Both names link to :0000104; the owner is the one slabinfo lists, oldest first.
    assert [(c.name, c.size, c.flags) for c in cands] == [("old_104", 104, SlabFlag.NONE)]
