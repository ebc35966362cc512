"""Is a lab shippable?  The reference solution must score full marks and the bare skeleton
must compile, run without crashing or hanging, and score low, on every declared kernel and arch.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.labs.grader import GradeOptions, grade_submission
from kmodlab.labs.lab import Lab
from kmodlab.labs.results import Outcome, StudentResult
from kmodlab.labs.schema import Target
from kmodlab.labs.skeleton import write_skeleton_sources
from kmodlab.paths import cache_dir

VERIFY_STUDENTS = ("reference", "verify-1", "verify-2", "verify-3")


@dataclass
class VerifyRow:
    target: Target
    student: str
    solution: StudentResult
    skeleton: StudentResult
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _judge(lab: Lab, row: VerifyRow) -> None:
    sol, skel = row.solution, row.skeleton
    max_points = lab.spec.max_points
    if sol.outcome is Outcome.HARNESS_ERROR or skel.outcome is Outcome.HARNESS_ERROR:
        errors = [t.error for r in (sol, skel) for t in r.targets if t.error]
        row.problems.append("harness error (rerun verify): " + (errors[0].splitlines()[0]
                                                                if errors else "?"))
        return
    if sol.outcome is not Outcome.PASSED or sol.score != max_points:
        failed = ", ".join(f"{c.name} ({c.message or c.observed})"[:160]
                           for c in sol.checks if not c.passed)
        row.problems.append(f"the solution scores {sol.score:g}/{max_points:g} "
                            f"({sol.outcome.label}): {failed}")
    if skel.outcome is Outcome.COMPILE_ERROR:
        out = "; ".join(t.build_output.splitlines()[0] for t in skel.targets if t.build_output)
        row.problems.append(f"the skeleton does not compile: {out[:300]}")
    elif skel.outcome in (Outcome.CRASH, Outcome.HANG):
        row.problems.append(f"the skeleton ends in a {skel.outcome.label}; give its TODO "
                            "regions stubs that keep it safe")
    limit = lab.spec.verify.skeleton_max_fraction * max_points
    if skel.score is not None and skel.score > limit:
        passed = ", ".join(c.name for c in skel.checks if c.passed)
        row.problems.append(f"the skeleton scores {skel.score:g}/{max_points:g}, more than "
                            f"{lab.spec.verify.skeleton_max_fraction:.0%}: it passes {passed}")


def verify_lab(lab: Lab, targets: list[Target] | None = None, students: int = 1,
               on_row=None) -> list[VerifyRow]:
    """Grade the solution and the skeleton on each target for ``students`` parameter draws."""
    targets = targets or lab.spec.targets
    ids = list(VERIFY_STUDENTS[:max(1, students)])
    rows: list[VerifyRow] = []
    tmp = Path(tempfile.mkdtemp(prefix=f"kmodlab-verify-{lab.id}-"))
    try:
        skel_dir = tmp / "skeleton"
        write_skeleton_sources(lab, skel_dir)
        for target in targets:
            for student in ids:
                options = GradeOptions(work_dir=tmp / "work", targets=[target],
                                       build_cache=cache_dir("lab-builds"))
                sol = grade_submission(lab, lab.solution_dir, student, options)
                skel = grade_submission(lab, skel_dir, student, options)
                row = VerifyRow(target, student, sol, skel)
                _judge(lab, row)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
