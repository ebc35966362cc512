"""Grading results as plain data: what every report and the resume state are made from.

A :class:`StudentResult` holds one :class:`TargetResult` per kernel it was graded on, and the
checks merged over them (a check earns its points only if it passed on every target).
Everything serialises to JSON and back, so an interrupted class run resumes from its state file
and reports can be rebuilt without regrading.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Outcome(str, enum.Enum):
    PASSED = "passed"                  # every check passed
    FAILED = "failed"                  # ran; some checks failed
    COMPILE_ERROR = "compile_error"    # rejected or did not compile
    CRASH = "crash"                    # oops, BUG, panic, or the guest died
    HANG = "hang"                      # a step did not finish in time
    HARNESS_ERROR = "harness_error"    # the grader failed; never charged, retried on resume

    @property
    def label(self) -> str:
        return OUTCOME_LABELS[self]

    @property
    def charged(self) -> bool:
        return self is not Outcome.HARNESS_ERROR


OUTCOME_LABELS = {
    Outcome.PASSED: "passed", Outcome.FAILED: "failed", Outcome.COMPILE_ERROR: "compile error",
    Outcome.CRASH: "crash", Outcome.HANG: "hang", Outcome.HARNESS_ERROR: "harness error",
}
# Which outcome a student gets when targets disagree (most severe first).
SEVERITY = (Outcome.HARNESS_ERROR, Outcome.COMPILE_ERROR, Outcome.HANG, Outcome.CRASH,
            Outcome.FAILED, Outcome.PASSED)


def worst(outcomes: list[Outcome]) -> Outcome:
    return min(outcomes, key=SEVERITY.index) if outcomes else Outcome.HARNESS_ERROR


@dataclass
class CheckResult:
    name: str
    kind: str
    max_points: float
    points: float
    status: str                 # passed, failed, not_run
    hidden: bool = False
    description: str = ""
    expected: str = ""
    observed: str = ""
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**data)


@dataclass
class TargetResult:
    target: str                 # "x86_64:6.1"
    outcome: Outcome
    checks: list[CheckResult] = field(default_factory=list)
    build_output: str = ""      # redacted
    crash: str = ""             # excerpt of the kernel report (oops, panic, hang)
    error: str = ""             # harness error message
    notes: list[str] = field(default_factory=list)
    console_tail: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetResult:
        data = dict(data)
        data["outcome"] = Outcome(data["outcome"])
        data["checks"] = [CheckResult.from_dict(c) for c in data.get("checks", [])]
        return cls(**data)


@dataclass
class StudentResult:
    student: str
    lab_id: str
    lab_digest: str
    submission_digest: str
    outcome: Outcome
    score: float | None
    max_score: float
    checks: list[CheckResult] = field(default_factory=list)
    targets: list[TargetResult] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    graded_at: str = ""
    seconds: float = 0.0
    attempts: int = 1
    public_only: bool = False

    @property
    def charged(self) -> bool:
        return self.outcome.charged

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "student": self.student, "lab_id": self.lab_id, "lab_digest": self.lab_digest,
            "submission_digest": self.submission_digest, "outcome": self.outcome.value,
            "score": self.score, "max_score": self.max_score,
            "checks": [asdict(c) for c in self.checks],
            "targets": [t.to_dict() for t in self.targets], "params": self.params,
            "notes": self.notes, "graded_at": self.graded_at, "seconds": self.seconds,
            "attempts": self.attempts, "public_only": self.public_only,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentResult:
        data = dict(data)
        data["outcome"] = Outcome(data["outcome"])
        data["checks"] = [CheckResult.from_dict(c) for c in data.get("checks", [])]
        data["targets"] = [TargetResult.from_dict(t) for t in data.get("targets", [])]
        return cls(**data)


def summarize(targets: list[TargetResult]) -> tuple[Outcome, list[CheckResult], float | None]:
    """A student's outcome, merged checks and score from their per-target results: the worst
    outcome, each check passed only where it passed on every target, and no score after a
    harness error (never charged)."""
    outcome = worst([t.outcome for t in targets])
    checks = merge_checks(targets)
    score = None if outcome is Outcome.HARNESS_ERROR else sum(c.points for c in checks)
    return outcome, checks, score


def merge_checks(targets: list[TargetResult]) -> list[CheckResult]:
    """One row per check: passed only if it passed on every target that ran it."""
    if not targets:
        return []
    merged: list[CheckResult] = []
    multi = len(targets) > 1
    for i, first in enumerate(targets[0].checks):
        rows = [t.checks[i] for t in targets if i < len(t.checks)]
        failing = [(t, c) for t, c in zip(targets, rows, strict=False) if not c.passed]
        if not failing:
            merged.append(CheckResult(**asdict(first)))
            continue
        target, bad = failing[0]
        prefix = f"[{target.target}] " if multi else ""
        status = "not_run" if all(c.status == "not_run" for _, c in failing) else "failed"
        merged.append(CheckResult(
            name=first.name, kind=first.kind, max_points=first.max_points, points=0.0,
            status=status, hidden=first.hidden, description=first.description,
            expected=bad.expected, observed=bad.observed,
            message=prefix + bad.message if bad.message else prefix.strip()))
    return merged
