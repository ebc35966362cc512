"""A lab's error_paths checks: the schema, the verdict on a sweep, what a student reads."""

from __future__ import annotations

import textwrap

import pytest

from kmodlab.channel.protocol import CommandResult
from kmodlab.faults.sweep import FaultReport, FaultRun, FaultSweep
from kmodlab.labs.checks import evaluate_checks
from kmodlab.labs.engine import Observations
from kmodlab.labs.error_paths import redact_paths, summarize, why_no_sweep
from kmodlab.labs.errors import LabError
from kmodlab.labs.lab import parse_lab_text
from kmodlab.registry import Target

LAB = """\
title: T
instructions: x
module: kml_t
submit: [t.c]
config: [fault-injection]
checks:
  - {name: handled, points: 4, error_paths: {path: init}}
"""


def parse(text: str):
    return parse_lab_text(textwrap.dedent(text), "labs/x/lab.yaml")


def test_every_target_of_the_lab_gets_its_config() -> None:
    spec = parse(LAB)
    assert {t.config for t in spec.targets} == {"fault-injection"}
    assert str(spec.grading_targets[0]) == "x86_64:6.1+fault-injection"
    # a target from the command line or a test names only arch and kernel
    assert spec.lab_target(Target("arm64", "6.12")).config == "fault-injection"
    merged = spec.lab_target(Target("x86_64", "6.1", config="debug-memory"))
    assert merged.config == "debug-memory,fault-injection"


def test_error_paths_need_a_fault_injection_kernel() -> None:
    with pytest.raises(LabError, match="need fault injection.*CONFIG_FAULT_INJECTION"):
        parse(LAB.replace("config: [fault-injection]", "config: [debug-memory]"))
    with pytest.raises(LabError, match="need fault injection"):
        parse(LAB.replace("config: [fault-injection]\n", ""))
    with pytest.raises(LabError, match="unknown kernel config fragment 'no-such'"):
        parse(LAB.replace("[fault-injection]", "[no-such]"))
    with pytest.raises(LabError, match="path"):
        parse(LAB.replace("path: init", "path: command"))


def _run(nth: int, site: str | None, outcome: str, detail: str = "") -> FaultRun:
    return FaultRun("init", nth, "failslab", site, f"kml_init at {site}", outcome, detail)


def _report(*runs: FaultRun, complete: bool = True) -> FaultReport:
    slab = FaultSweep("kml_t", "x86_64-6.1", "init", "failslab", runs=list(runs),
                      complete=complete)
    page = FaultSweep("kml_t", "x86_64-6.1", "init", "fail_page_alloc", complete=True)
    if not complete:
        slab.notes.append("stopped at --max-nth 9: allocations remain untested")
    return FaultReport([slab, page])


def _verdict(obs: Observations):
    spec = parse(LAB)
    return evaluate_checks(spec, spec.checks, obs, {}, None)[0]


def _obs(report: FaultReport | None) -> Observations:
    obs = Observations(module="kml_t", load=CommandResult("insmod", 0, b"", b"", 0.1))
    if report is not None:
        obs.error_paths = {"handled": summarize("init", report)}
    return obs


def test_every_site_handled_passes() -> None:
    row = _verdict(_obs(_report(_run(21, "t.c:10", "handled"), _run(22, "t.c:14", "handled"),
                                _run(23, None, "kernel"))))
    assert row.passed and row.points == 4
    assert row.observed.splitlines() == ["t.c:10: handled (failed call 21)",
                                         "t.c:14: handled (failed call 22)"]


def test_one_crash_fails_and_names_the_line_without_host_paths() -> None:
    detail = ("BUG: KASAN: null-ptr-deref; in your source: kml_init+0x1d/0x60 [kml_t] at "
              "/root/.cache/kmodlab/lab-builds/ab12/t.c:15 (in kml_init)")
    row = _verdict(_obs(_report(_run(21, "t.c:14", "crashed", detail))))
    assert not row.passed and row.points == 0
    assert "t.c:14: crashed" in row.observed and "at t.c:15" in row.observed
    assert "/root" not in row.observed and ".cache" not in row.observed
    assert "1 of 1 site(s) not handled" in row.message


def test_a_path_not_swept_to_its_end_fails() -> None:
    row = _verdict(_obs(_report(_run(21, "t.c:10", "handled"), complete=False)))
    assert not row.passed and "not swept to its end" in row.message


def test_a_module_that_never_allocates_is_not_a_pass() -> None:
    # an evasive module (returns early when it sees fail_nth) reaches no site of its own
    row = _verdict(_obs(_report(_run(21, None, "kernel"))))
    assert not row.passed and "reached 0 allocation site(s)" in row.message


def test_a_sweep_that_did_not_run_says_why() -> None:
    obs = _obs(None)
    obs.crash, obs.crash_kind = "BUG: unable to handle page fault", "oops"
    row = _verdict(obs)
    assert not row.passed and row.observed == "not swept" and "crashed" in row.message
    assert why_no_sweep(obs) == "the kernel crashed (oops)"
    failed = Observations(module="kml_t", load=CommandResult("insmod", 1, b"", b"ENOMEM", 0.1))
    assert why_no_sweep(failed) == "the module did not load"
    assert why_no_sweep(Observations(module="kml_t")) == "the module did not load"
    assert why_no_sweep(_obs(None)) == ""


@pytest.mark.parametrize(("text", "want"), [
    ("at /tmp/kmodlab-lab-x/work/t.c:15 (in f)", "at t.c:15 (in f)"),
    ("/root/.cache/kmodlab/kernel-sources/6.1/linux/mm/slub.c:3 and /a/b", "slub.c:3 and b"),
    ("kml_init+0x1d/0x60 [kml_t]", "kml_init+0x1d/0x60 [kml_t]"),
    ("t.c:3: 4/5 objects", "t.c:3: 4/5 objects"),
])
def test_paths_are_cut_to_file_names(text: str, want: str) -> None:
    assert redact_paths(text) == want


def test_calls_without_a_stack_are_not_the_modules_sites() -> None:
    # Before: "(unknown: __GFP_NOWARN)" counted as a module site, so an evasive module (it
    # returns early when it sees current->fail_nth) met min_sites with kmemleak's own calls.
    row = _verdict(_obs(_report(_run(336, "(unknown: __GFP_NOWARN)", "handled"))))
    assert not row.passed and "reached 0 allocation site(s)" in row.message
