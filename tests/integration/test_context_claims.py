"""Sleeping in atomic context, measured on a kernel built with kconfig/debug-context.config
(CONFIG_DEBUG_ATOMIC_SLEEP): the three context claims through ``kmodlab claims --measure``, and
the bug zoo's two atomic-context classes reported at the module's faulty line.

A might_sleep report is a report, not a crash: the guest goes on and the run is classified
"report" (kmodlab.observe.dmesg kind ``might_sleep``).  The ci tier runs x86_64 6.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmodlab.claims import observations as store
from kmodlab.cli import main
from kmodlab.detect.matrix import measure_cell
from kmodlab.kernels.kbuild import build_kernel

pytestmark = pytest.mark.integration

ARCH, SERIES = "x86_64", "6.1"
CLAIMS = {"gfp-kernel-may-sleep": "atomic_gfp_kernel",
          "gfp-atomic-never-sleeps": "atomic_gfp_atomic",
          "vmalloc-may-sleep": "atomic_vmalloc"}


@pytest.fixture(scope="module")
def debug_context_kernel():
    return build_kernel(ARCH, SERIES, "debug-context")


@pytest.fixture(scope="module")
def claims_json(debug_context_kernel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("claims") / "context.json"
    argv = ["claims", "--measure", "--arch", ARCH, "--kernel", SERIES, "--json", "--out",
            str(out)]
    for claim in CLAIMS:
        argv += ["--claim", claim]
    assert main(argv) == 0
    return json.loads(Path(out).read_text())


def test_context_claims_are_measured_true_and_agree(claims_json: dict) -> None:
    [kernel] = claims_json["kernels"]
    assert kernel["measured"], "nothing was measured"
    for claim in claims_json["claims"]:
        cell = claim["kernels"][kernel["label"]]
        assert cell["measured"] is not None, (claim["id"], cell.get("not_measured"))
        assert cell["verdict"] == "true" and cell["agrees"] is True, (claim["id"], cell)


def test_the_reports_come_from_the_debug_kernel(claims_json: dict, debug_context_kernel) -> None:
    [kernel] = claims_json["kernels"]
    obs = store.load(kernel["release"])
    assert obs is not None
    for claim, probe in CLAIMS.items():
        # Stored with the stock kernel's record, but measured on the built one.
        assert obs.kernels[probe] == debug_context_kernel.release, probe
        sleeps = [e for e in obs.events[probe] if e.startswith("might_sleep:")]
        assert bool(sleeps) == (claim != "gfp-atomic-never-sleeps"), (probe, obs.events[probe])


@pytest.mark.parametrize("bug", ["gfp-kernel-under-spinlock", "vmalloc-in-atomic"])
def test_sleeping_in_atomic_context_is_reported_at_its_line(debug_context_kernel,
                                                            bug: str) -> None:
    cell = measure_cell(debug_context_kernel, bug)
    assert cell.outcome == "report" and cell.by.startswith("might_sleep"), cell
    assert cell.at_bug_line, cell
