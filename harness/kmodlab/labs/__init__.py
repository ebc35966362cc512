"""Instructor labs: author a lab folder, hand out a skeleton, verify, grade a class, self-check.

    from kmodlab.labs import load_lab, grade_submission, grade_class, verify_lab
    lab = load_lab("kmalloc_waste")                    # labs/kmalloc_waste/lab.yaml
    result = grade_submission(lab, Path("subs/alice"), "alice")
    run = grade_class(lab, Path("subs"), Path("reports"))

A lab is ``labs/<name>/lab.yaml`` (schema: :mod:`kmodlab.labs.schema`, guide: docs/labs.md),
a reference solution with TODO-BEGIN/TODO-END regions (:mod:`kmodlab.labs.skeleton`), and
optional provided headers and templates.  Submissions are compiled on the host under the rules
of :mod:`kmodlab.labs.sandbox` and run only inside pristine guests (:mod:`kmodlab.labs.engine`).

Names are imported on first use: ``kmodlab`` loads this package for its ``lab`` subcommand on
every invocation, and the grading engine pulls in the guest, the model and pydantic.
"""

from __future__ import annotations

from kmodlab.lazy import lazy_exports

_EXPORTS = {
    "ClassRun": "classroom", "grade_class": "classroom",
    "EvaluationError": "errors", "ExpressionError": "errors", "LabError": "errors",
    "SkeletonError": "errors", "SubmissionRejected": "errors",
    "GradeOptions": "grader", "grade_submission": "grader",
    "Lab": "lab", "list_labs": "lab", "load_lab": "lab",
    "CheckResult": "results", "Outcome": "results", "StudentResult": "results",
    "TargetResult": "results",
    "VerifyRow": "verify", "verify_lab": "verify",
}

__all__ = [
    "CheckResult", "ClassRun", "EvaluationError", "ExpressionError", "GradeOptions", "Lab",
    "LabError", "Outcome", "SkeletonError", "StudentResult", "SubmissionRejected",
    "TargetResult", "VerifyRow", "grade_class", "grade_submission", "list_labs", "load_lab",
    "verify_lab",
]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
