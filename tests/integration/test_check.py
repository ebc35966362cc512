"""``kmodlab check`` on every kernel of the matrix: every family, one warm guest, zero
failures -- every exact quantity equal to the model's, every bounded one inside its bound."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kmodlab.check import CheckReport, render_check, run_check
from kmodlab.check.families import CHECKS
from kmodlab.check.rows import MATCH, NOT_OBSERVED
from kmodlab.cli import main
from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel

# Rows each family must produce at least (a family that quietly compares less fails here).
MIN_ROWS = {"kmalloc": 450, "kmem_cache": 100, "mempool": 50, "vmalloc": 50, "percpu": 20,
            "devres": 40, "pages": 400, "ioremap": 70,
            "dma": 50}
# Quantities that must be compared exactly (and match) at least this often.
MIN_EXACT = {("kmalloc", "ksize"): 60, ("kmalloc", "cache (kmem_dump_obj)"): 55,
             ("pages", "buddy free lists after alloc"): 20,
             ("kmem_cache", "slabinfo active_objs (shrunk)"): 4,
             ("vmalloc", "sizes (pages + guard page)"): 2,
             ("devres", "devres header (pointer offset)"): 4,
             ("ioremap", "non-zero word runs (offset, word, count)"): 2,
             ("dma", "from CMA"): 6}


@pytest.fixture(scope="module")
def warm_guest(kernel: Kernel) -> Iterator[Guest]:
    with Guest(kernel) as guest:
        yield guest


@pytest.fixture(scope="module")
def report(kernel: Kernel, warm_guest: Guest) -> CheckReport:
    return run_check(kernel, guest=warm_guest)


def test_check_passes(report: CheckReport) -> None:
    assert report.exit_code == 0, render_check(report)


def test_every_family_compares_enough(report: CheckReport) -> None:
    assert [f.family for f in report.families] == list(CHECKS)
    for fam in report.families:
        assert not fam.errors, fam.errors
        assert len(fam.rows) >= MIN_ROWS[fam.family], (fam.family, len(fam.rows))
        assert not [r for r in fam.rows if r.verdict == NOT_OBSERVED and not r.informational]


def test_exact_quantities_are_really_compared(report: CheckReport) -> None:
    for (family, quantity), least in MIN_EXACT.items():
        rows = [r for r in report.rows if r.family == family and r.quantity == quantity]
        exact = [r for r in rows if r.exact and r.verdict == MATCH and not r.informational]
        assert len(exact) >= least, (family, quantity, len(exact))


def test_the_cli_checks_one_family(kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    major, minor = kernel.version
    code = main(["check", "percpu", "--arch", kernel.arch, "--kernel", f"{major}.{minor}",
                 "--flavour", kernel.flavour, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["exit_code"] == 0
    assert data["kernel"]["release"] == kernel.release and data["summary"]["failed"] == 0
