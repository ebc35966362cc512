"""``kmodlab check`` on a generic-KASAN kernel (kconfig/debug-memory.config): the model follows
KASAN's per-object metadata and redzones (mm/kasan/generic.c:kasan_cache_create()), so every
slab layout, ksize and slab order still matches exactly, and no row fails.

The ci tier checks x86_64 6.1; the full tier adds x86_64 6.12 (whose small-object layout
differs, see the model's KASAN_SMALL_OBJECT_FREE_META).
"""

from __future__ import annotations

import os

import pytest

from kmodlab.check import CheckReport, render_check, run_check
from kmodlab.check.rows import MATCH
from kmodlab.claims.target import configured_target
from kmodlab.kernels.kbuild import build_kernel
from kmodlab.model import Model

pytestmark = pytest.mark.integration

TARGETS = [("x86_64", "6.1")]
if os.environ.get("KMODLAB_TIER", "full") == "full":
    TARGETS.append(("x86_64", "6.12"))
FAMILIES = ("kmalloc", "kmem_cache", "devres")


@pytest.fixture(scope="module", params=TARGETS, ids=["-".join(t) for t in TARGETS])
def report(request: pytest.FixtureRequest) -> CheckReport:
    arch, series = request.param
    kernel = build_kernel(arch, series, "debug-memory")
    assert Model.for_kernel(kernel).params.kasan_generic
    # `kmodlab model --config debug-memory` answers from this kernel's .config
    asked = configured_target(arch, series, "debug-memory")
    assert asked.kernel is not None and asked.kernel.release == kernel.release
    assert asked.model.params.kasan_generic
    return run_check(kernel, FAMILIES)


def test_check_passes_on_a_kasan_kernel(report: CheckReport) -> None:
    assert report.exit_code == 0, render_check(report)


def test_kasan_layouts_are_compared_exactly(report: CheckReport) -> None:
    rows = [r for f in report.families for r in f.rows]
    objsize = [r for r in rows if r.quantity == "slabinfo objsize" and not r.informational]
    ksize = [r for r in rows if r.family == "kmalloc" and r.quantity == "ksize"]
    assert len(objsize) >= 4 and all(r.verdict == MATCH for r in objsize), objsize
    assert len(ksize) >= 60 and all(r.verdict == MATCH for r in ksize if r.exact)
