"""Class runs: every student folder, per-student reports, resume after an interruption."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kmodlab.labs import classroom
from kmodlab.labs.lab import load_lab
from kmodlab.labs.results import CheckResult, Outcome, StudentResult, TargetResult

LAB = load_lab("kmalloc_waste")


@pytest.fixture
def fake_grading(monkeypatch: pytest.MonkeyPatch):
    """grade_submission without guests: the outcome comes from a file in the submission."""
    calls: list[str] = []

    def fake(lab, folder, student, options):
        calls.append(student)
        outcome = Outcome((folder / "outcome").read_text().strip())
        if outcome is Outcome.HARNESS_ERROR and (folder / "fixed").exists():
            outcome = Outcome.PASSED
        passed = outcome is Outcome.PASSED
        checks = [CheckResult(c.name, c.kind, c.points, c.points if passed else 0,
                              "passed" if passed else "failed") for c in lab.spec.checks]
        score = None if outcome is Outcome.HARNESS_ERROR else sum(c.points for c in checks)
        target = TargetResult("x86_64:6.1", outcome, checks)
        return StudentResult(student, lab.id, lab.digest, "d", outcome, score,
                             lab.spec.max_points, checks, [target])

    monkeypatch.setattr(classroom, "grade_submission", fake)
    monkeypatch.setattr(classroom, "kernel_for", lambda target, cache: None)
    monkeypatch.setattr(classroom, "require_jail", lambda kernel: None)
    return calls


def make_class(root: Path, outcomes: dict[str, str]) -> Path:
    for student, outcome in outcomes.items():
        folder = root / student
        folder.mkdir(parents=True)
        (folder / "waste.c").write_text(f"/* {student} */\n")
        (folder / "outcome").write_text(outcome)
    return root


def test_grades_everyone_and_writes_reports(fake_grading, tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": "passed", "bob": "crash", "<eve>": "failed"})
    os.symlink("/etc", subs / "mallory")          # never followed
    out = tmp_path / "out"
    run = classroom.grade_class(LAB, subs, out, progress=False)
    assert sorted(r.student for r in run.results) == ["<eve>", "alice", "bob"]
    for name in ("class.csv", "class.html", "summary.json", "state.jsonl"):
        assert (out / name).is_file()
    eve = out / "students" / classroom.slug("<eve>")
    for name in ("report.md", "report.json", "junit.xml", "results.json"):
        assert (eve / name).is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcomes"] == {"passed": 1, "crash": 1, "failed": 1}


def test_resume_skips_finished_students_and_retries_harness_errors(fake_grading,
                                                                   tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": "passed", "bob": "harness_error"})
    out = tmp_path / "out"
    first = classroom.grade_class(LAB, subs, out, progress=False)
    assert first.harness_errors == ["bob"]
    (subs / "bob" / "fixed").write_text("")
    fake_grading.clear()
    second = classroom.grade_class(LAB, subs, out, progress=False)
    assert fake_grading == ["bob"], "alice was done; only the harness error is retried"
    assert second.reused == ["alice"] and not second.harness_errors
    (subs / "alice" / "waste.c").write_text("/* changed */\n")
    fake_grading.clear()
    classroom.grade_class(LAB, subs, out, progress=False)
    assert fake_grading == ["alice"], "a changed submission is graded again"


def test_an_interrupted_state_line_is_ignored(fake_grading, tmp_path: Path) -> None:
    subs = make_class(tmp_path / "subs", {"alice": "passed"})
    out = tmp_path / "out"
    classroom.grade_class(LAB, subs, out, progress=False)
    with open(out / "state.jsonl", "a") as fh:
        fh.write('{"key": "x", "student": "alice", "result": {"trunc')
    fake_grading.clear()
    classroom.grade_class(LAB, subs, out, progress=False)
    assert fake_grading == []


def test_stop_event_interrupts(fake_grading, tmp_path: Path) -> None:
    import threading

    subs = make_class(tmp_path / "subs", {f"s{i}": "passed" for i in range(5)})
    stop = threading.Event()
    run = classroom.grade_class(LAB, subs, tmp_path / "out", progress=False, stop=stop,
                                on_result=lambda r: stop.set())
    assert run.interrupted and len(run.graded) == 1


def test_no_jail_refuses_before_grading_anyone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               fake_grading) -> None:
    from kmodlab.labs.jail import JailError

    def no_jail(kernel: object) -> None:
        raise JailError("bwrap (Debian package bubblewrap) is not installed")

    monkeypatch.setattr(classroom, "require_jail", no_jail)
    graded: list[str] = []
    monkeypatch.setattr(classroom, "grade_submission",
                        lambda lab, folder, student, options: graded.append(student))
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    with pytest.raises(JailError, match="bubblewrap"):
        classroom.grade_class(load_lab("kmalloc_waste"), subs, tmp_path / "out", progress=False)
    assert graded == []
