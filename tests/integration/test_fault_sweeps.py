"""``kmodlab faults`` on kernels built with kconfig/fault-injection.config (and debug-memory):
every allocation of a module's init failed in turn, in a pristine guest each.

Three modules (tests/integration/data/error_paths/): one that checks and unwinds everything
(every site handled), one that writes through kmalloc()'s result unchecked (crashed, at the
kmalloc's line, the crash at the write's), and one whose second allocation's error path forgets
the first (leaked, at the second allocation).  The ci tier sweeps x86_64 6.1; the full tier
adds arm64 6.12.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kmodlab.assertions import KernelAssertionError, assert_failures_handled
from kmodlab.cli import main
from kmodlab.faults import FaultReport, sweep_failures
from kmodlab.guest import Guest
from kmodlab.kernels.kbuild import build_kernel
from kmodlab.modules import build_source_dir
from kmodlab.runner import LoadedModule

pytestmark = pytest.mark.integration

CONFIG = "fault-injection,debug-memory"
DATA = Path(__file__).parent / "data" / "error_paths"
TARGETS = [("x86_64", "6.1")]
if os.environ.get("KMODLAB_TIER", "full") == "full":
    TARGETS.append(("arm64", "6.12"))


def line_of(module: str, text: str) -> str:
    """``kml_x.c:N`` of the first code line (not a comment) containing ``text``."""
    source = (DATA / module / f"{module}.c").read_text().splitlines()
    return f"{module}.c:" + str(next(
        i for i, line in enumerate(source, 1)
        if text in line and not line.lstrip().startswith(("/*", "*", "//"))))


@pytest.fixture(scope="module", params=TARGETS, ids=["-".join(t) for t in TARGETS])
def fault_kernel(request: pytest.FixtureRequest):
    arch, series = request.param
    return build_kernel(arch, series, CONFIG)


def sweep(kernel, module: str, **options) -> FaultReport:
    built = build_source_dir(DATA / module, kernel, [], module_name=module)
    return sweep_failures(kernel, built, **options)


def sites(report: FaultReport) -> dict[str, str]:
    return {s.site: s.outcome for s in report.sites}


def test_a_correct_module_handles_every_site(fault_kernel) -> None:
    report = sweep(fault_kernel, "kml_ep_ok", paths=("init", "exit"), kmemleak_scan=False)
    assert_failures_handled(report)
    found = sites(report)
    for call in ("kmalloc(200", "kmem_cache_create(", "kmem_cache_alloc(", "vmalloc("):
        assert found.get(line_of("kml_ep_ok", call)) == "handled", (call, found)
    assert all(s.complete for s in report.sweeps)


def test_an_unchecked_allocation_crashes_at_its_line(fault_kernel) -> None:
    report = sweep(fault_kernel, "kml_ep_unchecked", kmemleak_scan=False)
    site = next((s for s in report.sites if s.site == line_of("kml_ep_unchecked", "kmalloc(64")),
                None)
    assert site is not None and site.outcome == "crashed", report.sites
    assert line_of("kml_ep_unchecked", "name[0] = 'k'") in site.detail
    assert not report.ok


def test_a_leaking_error_path_is_reported_at_its_site(fault_kernel) -> None:
    report = sweep(fault_kernel, "kml_ep_leaky")
    found = sites(report)
    assert found.get(line_of("kml_ep_leaky", "kmalloc(1024")) == "leaked", found
    assert found.get(line_of("kml_ep_leaky", "vmalloc(")) == "handled", found
    with pytest.raises(KernelAssertionError, match="leaked"):
        assert_failures_handled(report)


def test_the_cli_and_the_pytest_api(fault_kernel, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["faults", str(DATA / "kml_ep_unchecked"), "--arch", fault_kernel.arch,
                   "--kernel", fault_kernel.series, "--config", "debug-memory",
                   "--no-kmemleak", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 1 and not data["ok"]
    assert [(s["path"], s["attribute"]) for s in data["sweeps"]] == [
        ("init", "failslab"), ("init", "fail_page_alloc")]
    assert any(s["outcome"] == "crashed" for s in data["sweeps"][0]["sites"])
    # the same through a pytest-style LoadedModule: the warm guest is left as it was
    built = build_source_dir(DATA / "kml_ep_ok", fault_kernel, [], module_name="kml_ep_ok")
    with Guest(fault_kernel) as guest:
        report = LoadedModule(guest, built).sweep_failures(kmemleak_scan=False)
        assert guest.run("lsmod").stdout.count("kml_ep_ok") == 0
    assert_failures_handled(report)


def test_failing_allocator_claims_measured(tmp_path: Path) -> None:
    """kmalloc() returns NULL and a mempool serves exactly its reserve when failslab really
    fails the task's slab allocations (claims.yaml's failing_allocator probe, x86_64 6.1)."""
    out = tmp_path / "claims.json"
    status = main(["claims", "--measure", "--arch", "x86_64", "--kernel", "6.1", "--json",
                   "--out", str(out), "--claim", "kmalloc-may-fail",
                   "--claim", "mempool-reserve-on-failure"])
    data = json.loads(out.read_text())
    assert status == 0, data
    for claim in data["claims"]:
        [cell] = claim["kernels"].values()
        assert cell["measured"] is not None, (claim["id"], cell)
        assert cell["verdict"] == "true" and cell["agrees"] is True, (claim["id"], cell)
