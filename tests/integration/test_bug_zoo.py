"""The bug zoo on a debug kernel: each class of the bugs family is reported by the detector the
``debug-memory`` kernel has, naming the module's faulty line, as measured into
docs/detection.md (``kmodlab detect --measure``).

The ci tier runs it on x86_64 6.1 (the CI's one debug kernel, built by
test_kernel_builds.py's fixture or here); the full tier adds arm64 6.12.  Classes the
debug-memory kernel does not catch (sleeping in atomic context needs debug-context; page and
per-CPU leaks and a wrong-order free are silent to every detector measured) are in
docs/detection.md, not here: this file holds what must keep being caught.
"""

from __future__ import annotations

import os

import pytest

from kmodlab.detect.matrix import measure_cell
from kmodlab.kernels.kbuild import build_kernel

pytestmark = pytest.mark.integration

TARGETS = [("x86_64", "6.1")]
if os.environ.get("KMODLAB_TIER", "full") == "full":
    TARGETS.append(("arm64", "6.12"))

# class -> (what must report it: the start of Cell.by, must the report name the bug's line)
CAUGHT = {
    "slab-oob-write": ("KASAN slab-out-of-bounds", True),
    "slab-oob-read": ("KASAN slab-out-of-bounds", True),
    "vmalloc-oob-write": ("KASAN vmalloc-out-of-bounds", True),
    "page-oob-write": ("KASAN use-after-free", True),        # the neighbour page is free
    "slab-use-after-free": ("KASAN use-after-free", True),
    "slab-use-after-free-write": ("KASAN use-after-free", True),
    "double-free": ("KASAN double-free", True),
    "leak-kmalloc": ("kmemleak", True),
    "leak-kmem-cache": ("kmodlab leak check + kmemleak", True),
    "leak-vmalloc": ("kmodlab leak check + kmemleak", True),
    "kmalloc-too-large": ("WARNING at mm/page_alloc.c", True),
    "kmem-cache-destroy-live": ("SLUB Objects remaining", True),
}


@pytest.fixture(scope="module", params=TARGETS, ids=["-".join(t) for t in TARGETS])
def debug_kernel(request: pytest.FixtureRequest):
    arch, series = request.param
    return build_kernel(arch, series, "debug-memory")


@pytest.mark.parametrize("bug", list(CAUGHT))
def test_the_debug_kernel_catches_it_at_its_line(debug_kernel, bug: str) -> None:
    by, at_line = CAUGHT[bug]
    cell = measure_cell(debug_kernel, bug)
    assert cell.detected and cell.by.startswith(by), cell
    if at_line:
        assert cell.at_bug_line, cell
