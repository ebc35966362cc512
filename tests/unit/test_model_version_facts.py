"""Kernel-version facts live in the model's tables: ``tables.SINCE`` and ``tables.since()``.

Each boundary is pinned on both sides, the table entries derived from it agree with it, and no
code outside the model and the registry compares a kernel version with a tuple literal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmodlab.errors import ConfigError
from kmodlab.kernels.kernel import Kernel
from kmodlab.model import tables
from kmodlab.modules import limits, render

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, before, first", [
    ("MAX_ORDER_INCLUSIVE", (6, 3), (6, 4)),         # 23baf831a32c
    ("SLAB_NO_MERGE", (6, 4), (6, 5)),               # d0bf7d5759c1
    ("KMALLOC_MINALIGN_DECOUPLED", (6, 4), (6, 5)),  # 4ab5f8ec7d71
    ("RANDOM_KMALLOC_CACHES", (6, 5), (6, 6)),       # 3c6152940584
    ("CALCULATE_ORDER_FRACTIONS", (6, 6), (6, 7)),
    ("MAX_PAGE_ORDER", (6, 7), (6, 8)),              # 5e0a760b4441
    ("PCP_HIGH_ORDER", (5, 12), (5, 13)),            # 44042b449872
    ("KMALLOC_CGROUP", (5, 13), (5, 14)),            # 494c1dfe855e
    ("CPU_PARTIAL_SLABS", (5, 15), (5, 16)),         # b47291ef02b0
    ("SLUB_TRACK_STACKDEPOT", (5, 16), (5, 17)),     # 788691464c29
    ("KMALLOC_SIZE_ROUNDUP", (6, 0), (6, 1)),        # 05a940656e1e
    ("SLUB_ORIG_SIZE", (6, 0), (6, 1)),              # 6edf2576a6cc
])
def test_boundaries(name: str, before: tuple[int, int], first: tuple[int, int]) -> None:
    assert not tables.since(name, before)
    assert tables.since(name, first)
    assert tables.since(name, (first[0], first[1] + 1)) and tables.since(name, (first[0] + 1, 0))
    assert not tables.since(name, (first[0] - 1, 99))
    assert tables.since(name, first + (42,))             # (major, minor, patch) is fine
    assert tables.SINCE[name].release == first


def test_every_fact_cites_its_source() -> None:
    for name, fact in tables.SINCE.items():
        assert re.search(r"\.[ch]\b", fact.source), name               # a kernel file
        assert re.search(r"\(\d+\.\d+\)", fact.source), name          # the release
        assert f"({fact.release[0]}.{fact.release[1]})" in fact.source, name


@pytest.mark.parametrize("entry, fact, present, absent", [
    ("MAX_ORDER_EXCLUSIVE", "MAX_ORDER_INCLUSIVE", False, True),
    ("MAX_ORDER_DEFAULT", "MAX_ORDER_INCLUSIVE", 10, 11),
    ("SLAB_NO_MERGE_EXISTS", "SLAB_NO_MERGE", True, False),
    ("KMALLOC_RUNTIME_MINALIGN", "KMALLOC_MINALIGN_DECOUPLED", True, False),
    ("CALCULATE_ORDER", "CALCULATE_ORDER_FRACTIONS", "min_order_fractions",
     "min_objects_countdown"),
])
def test_table_entries_follow_the_boundaries(entry: str, fact: str, present: object,
                                             absent: object) -> None:
    for arch, series in tables.covered():
        expected = present if tables.since(fact, tables.series_version(series)) else absent
        assert tables.lookup(entry, arch, series) == expected, (entry, arch, series)
    # the covered series sit on both sides, so the derivation is exercised both ways
    assert tables.lookup(entry, "x86_64", "6.1") == absent
    assert tables.lookup(entry, "x86_64", "6.12") == present


def _kernel(tmp_path: Path, release: str, config: str = "") -> Kernel:
    root = tmp_path / release
    root.mkdir(parents=True, exist_ok=True)
    (root / "config").write_text(config)
    return Kernel(arch="arm64", series="custom", flavour="custom", release=release,
                  package_version="", root=root, image=root / "Image", vmlinux=None,
                  config=root / "config", system_map=root / "System.map",
                  modules_dir=root / "modules", headers_dir=root / "headers")


@pytest.mark.parametrize("release, order", [
    ("6.3.13-custom", 10), ("6.4.0-custom", 11), ("6.1.0-56-arm64", 10), ("6.15.2", 11),
])
def test_forced_max_order_on_custom_kernels(tmp_path: Path, release: str, order: int) -> None:
    # CONFIG_ARCH_FORCE_MAX_ORDER=11: one past the top order before 6.4, the top order from 6.4
    kernel = _kernel(tmp_path, release, "CONFIG_ARCH_FORCE_MAX_ORDER=11\n")
    assert limits.max_page_order(kernel) == order
    assert limits.max_page_order(_kernel(tmp_path, release + "-plain")) == 10


@pytest.mark.parametrize("release, allowed", [
    ("6.4.16-custom", False), ("6.5.0-custom", True), ("5.15.0", False), ("7.0.1", True),
])
def test_slab_no_merge_on_custom_kernels(tmp_path: Path, release: str, allowed: bool) -> None:
    kernel = _kernel(tmp_path, release)
    params = {"flags": ["SLAB_NO_MERGE"]}
    if allowed:
        assert "SLAB_NO_MERGE" in render("kmem_cache", params, kernel).source
    else:
        with pytest.raises(ConfigError, match=r"SLAB_NO_MERGE exists from Linux 6\.5"):
            render("kmem_cache", params, kernel)


# -- no version comparisons outside the model ------------------------------------------------

_NUM_TUPLE = r"\(\s*\d+\s*,\s*\d+\s*(?:,\s*\d+\s*)?\)"
_ORDER_OP = r"(?:<=|>=|<|>)"
VERSION_COMPARISON = re.compile(
    rf"\.version\s*{_ORDER_OP}\s*{_NUM_TUPLE}"              # version, operator, tuple
    rf"|{_NUM_TUPLE}\s*{_ORDER_OP}\s*[\w.()]*\.version\b"   # tuple, operator, version
)
ALLOWED_DIRS = ("harness/kmodlab/model/", "harness/kmodlab/registry/")
SCANNED = ("harness", "tests", "scripts", "benchmarks", "examples", "labs", "modules")
# Files that still compare, each with why; an entry that stops matching must be removed.
KNOWN: dict[str, str] = {
    "tests/integration/test_pytest_plugin.py":
        "tests the plugin's kernel='>=6.5' marker range, not a kernel fact",
}


def _comparisons() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(ALLOWED_DIRS) or "__pycache__" in rel:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if VERSION_COMPARISON.search(line):
                    found.setdefault(rel, []).append(f"{rel}:{number}: {line.strip()}")
    return found


def test_the_comparison_pattern() -> None:
    v = ".ver" + "sion"    # pieces, so this file does not trip its own scan
    for bad in (f"if kernel{v} >= (6, 4):", f"kernel{v}<(6,5)", f"k{v} > (6, 1, 3)",
                f"(6, 5) <= kernel{v}", f"self.kernel{v} <= (6, 12)"):
        assert VERSION_COMPARISON.search(bad), bad
    for fine in (f"m{v} == (6, 12)", f"tables.since('SLAB_NO_MERGE', kernel{v})",
                 "release=(6, 4)", f"doc{v} = stripped"):
        assert not VERSION_COMPARISON.search(fine), fine


def test_no_version_comparisons_outside_the_model() -> None:
    found = _comparisons()
    new = [line for rel, lines in found.items() if rel not in KNOWN for line in lines]
    assert not new, ("kernel-version facts belong in harness/kmodlab/model/tables.py (SINCE); "
                     "ask tables.since(name, version):\n" + "\n".join(new))
    stale = sorted(set(KNOWN) - set(found))
    assert not stale, f"no longer compare versions; drop from KNOWN: {stale}"


def test_5_10_facts_from_its_source() -> None:
    """What 5.10 lacks is refused or answered as 5.10 does, never answered as 6.1."""
    from kmodlab.model import Model
    from kmodlab.model.errors import ModelError

    m = Model("x86_64", "5.10")
    with pytest.raises(ModelError, match="no kmalloc_size_roundup"):
        m.kmalloc_size_roundup(100)
    # mm/page_alloc.c:rmqueue() (5.10): only order 0 goes through the per-cpu lists
    assert m.is_pcp_order(0) and not m.is_pcp_order(1)
    assert not m.is_pcp_order(9)
    assert Model("x86_64", "6.1").is_pcp_order(3)
    # no kmalloc-cg caches: accounted kmalloc shares the normal ones
    assert m.kmalloc_cache_for(100, "GFP_KERNEL_ACCOUNT").value == "kmalloc-128"
    assert "ARCH_DMA_MINALIGN" not in m.constants()           # 5.10 x86 does not define it
    assert Model("arm64", "5.10").constants()["ARCH_DMA_MINALIGN"].value == 128
    # arm64 5.10 spells the forced max order CONFIG_FORCE_MAX_ZONEORDER
    kc = {"CONFIG_SLUB": "y", "CONFIG_FORCE_MAX_ZONEORDER": "9"}
    assert Model("arm64", "5.10", kc).params.max_page_order == 8
    # the per-CPU partial limit is in objects (2/6/13/30), not slabs
    info = m.kmem_cache(100).value
    assert info.cpu_partial_slabs is None
