"""The detection matrix's pure parts: naming what reported a bug, finding the bug's line among a
report's frames, and rendering (kmodlab.detect)."""

from __future__ import annotations

from pathlib import Path

from kmodlab.detect.matrix import Cell, _by, _first_line
from kmodlab.detect.render import render_markdown, render_svg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"


def test_what_reported_it() -> None:
    kasan = (FIXTURES / "x86_64-6.1-debug-memory" / "kasan-slab-out-of-bounds.log").read_text()
    assert _by("kasan", kasan) == "KASAN slab-out-of-bounds"
    assert _by("bug", "[ 1.0] kernel BUG at mm/slub.c:419!\n[ 1.1] invalid opcode: 0000") == \
        "BUG at mm/slub.c:419"
    assert _by("warning", "[ 1.0] WARNING: CPU: 0 PID: 60 at mm/page_alloc.c:5634 "
                          "__alloc_pages+0x1/0x2\n") == "WARNING at mm/page_alloc.c:5634"
    assert _by("oops", "BUG: unable to handle page fault for address: ffffeb02\n") == \
        "oops: unable to handle page fault for address: ffffeb02"


def test_the_bug_line_is_found_among_the_frames() -> None:
    lines = ["kml_x+0x40/0x90 [kml_bugs] at /b/kml_bugs.c:88",
             "kml_x+0x10/0x90 [kml_bugs] at /b/kml_bugs.c:57 (in kmalloc at /k/slab.h:563)"]
    assert _first_line(lines, 57) == ("kml_bugs.c:57", True)
    assert _first_line(lines, 99) == ("kml_bugs.c:88", False)
    assert _first_line([], 57) == ("", False)


def _cells() -> list[Cell]:
    return [Cell("double-free", "x86_64", "", "6.1.0-57-cloud-amd64", "crash", True,
                 "BUG at mm/slub.c:419", "kml_bugs.c:102", True),
            Cell("double-free", "x86_64", "debug-memory", "6.1.192-kmodlab-debug-memory",
                 "crash", True, "KASAN double-free", "kml_bugs.c:102", True),
            Cell("leak-kmalloc", "x86_64", "", "6.1.0-57-cloud-amd64", "silent", False, ""),
            Cell("leak-kmalloc", "x86_64", "debug-memory", "6.1.192-kmodlab-debug-memory",
                 "leak", True, "kmemleak", "kml_bugs.c:57", True)]


def test_the_markdown_table_has_a_row_per_bug_and_totals() -> None:
    text = render_markdown(_cells(), measured="2026-12-04", command="kmodlab detect --measure")
    assert "| bug | stock (6.1.0-57-cloud-amd64) | debug-memory (6.1.192-kmodlab-debug-memory) |" \
        in text
    assert "| double-free | **BUG at mm/slub.c:419** at kml_bugs.c:102 (the bug) | " \
           "**KASAN double-free** at kml_bugs.c:102 (the bug) |" in text
    assert "| leak-kmalloc | silent | **kmemleak** at kml_bugs.c:57 (the bug) |" in text
    assert "| **total** | 1/2 detected, 1 at the bug's line | 2/2 detected, 2 at the bug's " \
           "line |" in text
    assert "kmodlab detect --measure" in text


def test_the_chart_is_an_svg_with_a_bar_per_arch_and_configuration() -> None:
    svg = render_svg(_cells())
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "x86_64 stock: 1/2" in svg and "x86_64 debug-memory: 2/2" in svg


# Which of bugs.yaml's detectors each measured column has and reports on its own
# (docs/detection.md's kernels).  page_owner is built into debug-memory but only answers when
# /sys/kernel/debug/page_owner is read, which no run does: it is not a detector here.
COLUMN_DETECTORS = {
    "": {"stock", "kmodlab_leaks"},
    "slub-debug": {"stock", "slub_debug", "kmodlab_leaks"},
    "debug-memory": {"stock", "kasan", "kmemleak", "debug_vm", "debug_pagealloc",
                     "kmodlab_leaks"},
    "debug-context": {"stock", "debug_atomic_sleep", "lockdep", "kmodlab_leaks"},
}
# Cells measured on kernels built before kconfig/build-base.config had Debian's slab hardening:
# the arm64 debug-context column misses what the stock kernel catches.  Re-measure with
# `kmodlab detect --measure --target arm64:6.12 --configs debug-context`, then drop them here.
STALE = {("arm64", "double-free", "debug-context"),
         ("arm64", "mempool-free-wrong-pool", "debug-context")}


def test_the_measured_matrix_agrees_with_the_expectations() -> None:
    """docs/detection.json against modules/bugs/bugs.yaml: a cell is detected exactly when the
    class expects an unconditional detector its kernel has ("later kernels" entries count on
    6.12; KFENCE's sampled ones neither way)."""
    import json

    import yaml

    root = Path(__file__).resolve().parents[2]
    classes = yaml.safe_load((root / "modules/bugs/bugs.yaml").read_text())["classes"]
    cells = json.loads((root / "docs/detection.json").read_text())["cells"]
    wrong = set()
    for cell in cells:
        later = not cell["kernel"].startswith("6.1.") and not cell["kernel"].startswith("6.1-")
        expected = []
        for entry in classes[cell["bug"]].get("expected", []):
            when = entry.get("when") or ""
            if "only if" in when or ("later kernels" in when and not later):
                continue
            if entry["detector"] in COLUMN_DETECTORS[cell["config"]]:
                expected.append(entry["detector"])
        if bool(expected) != cell["detected"]:
            wrong.add((cell["arch"], cell["bug"], cell["config"]))
    assert wrong == STALE
