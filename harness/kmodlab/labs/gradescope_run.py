"""What the Gradescope autograder runs: ``python -m kmodlab.labs.gradescope_run COMMAND``.

    run --root /autograder          grade /autograder/submission into results/results.json
    warm --source /autograder/source   (setup.sh) provision the kernels, boot each guest once
    grade-target ...                one target, in a child process of ``run``

``run`` grades each target in its own process group, in order, and stops the one still running
when the time limit is near (SIGTERM, then SIGKILL: its QEMU dies with it, PR_SET_PDEATHSIG, and
its build jail too, bwrap --die-with-parent).  The targets that finished make a partial result;
``output`` names the others.  A harness error, or a time limit that left nothing graded, writes
no results.json at all (see :func:`kmodlab.labs.gradescope.gradescope_results`).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kmodlab.labs.gradescope import (
    PINS_PATH,
    AutograderConfig,
    chargeable,
    combine_results,
    gradescope_results,
    harness_result,
    instructor_report,
    load_config,
    load_pins,
    schema_problems,
    target_from_json,
    target_to_json,
)
from kmodlab.labs.results import Outcome, StudentResult
from kmodlab.registry import Target

ROOT_ENV = "KMODLAB_AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
KILL_GRACE = 10.0
"""Seconds a stopped grading process has to stop its guest before it is killed."""
WARM_STUDENT = "reference"
EXIT_NOT_GRADED = 3

log = logging.getLogger(__name__)


def autograder_root(given: str | None = None) -> Path:
    return Path(given or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def student_from_metadata(root: Path, field: str) -> tuple[str, list[str]]:
    """The student id that draws the parameters, from Gradescope's submission_metadata.json,
    and notes for ``output``.  Emails are lower-cased; a group takes its smallest id, so every
    member's submission draws the same parameters."""
    from kmodlab.labs.params import LOCAL_STUDENT

    try:
        data = json.loads((root / "submission_metadata.json").read_text())
        users = data.get("users") or []
        values = sorted({str(u[field]).strip() for u in users
                         if isinstance(u, dict) and u.get(field) not in (None, "")})
    except (OSError, ValueError, AttributeError):
        values = []
    if field == "email":
        values = sorted({v.lower() for v in values})
    if not values:
        return LOCAL_STUDENT, [(f"(No submission metadata: graded with the parameters of "
                                f"student '{LOCAL_STUDENT}'.)")]
    notes = [f"Parameters drawn for {field} {values[0]}."]
    if len(values) > 1:
        notes.append(f"Group submission: every member gets the parameters of {values[0]}.")
    return values[0], notes


# ------------------------------------------------------------------------------ one target
@dataclass
class TargetRun:
    """One target's grading: its result, or ``timed_out`` when the time limit stopped it."""

    target: str
    result: StudentResult | None
    timed_out: bool = False


GradeTarget = Callable[[Target, float], TargetRun]
"""(target, seconds it may take) -> TargetRun; :func:`child_grader` in production."""


def run_child(argv: list[str], timeout: float, grace: float = KILL_GRACE) -> int | None:
    """Run ``argv`` in its own session; None if it had to be stopped after ``timeout`` s.

    Stopping: SIGTERM to its process group (the grader turns it into SystemExit and stops its
    guest on the way out), SIGKILL to the group after ``grace`` s.  Whatever is left in the
    group is killed in any case."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    rc: int | None
    try:
        rc = proc.wait(timeout=max(0.0, timeout))
    except subprocess.TimeoutExpired:
        rc = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return rc


def child_grader(source: Path, submission: Path, student: str, workdir: Path,
                 lab: Any) -> GradeTarget:
    """Grade each target in a child process (``grade-target``) that can be stopped in time."""
    numbers = itertools.count()

    def grade(target: Target, timeout: float) -> TargetRun:
        out = workdir / f"target-{next(numbers)}.json"
        argv = [sys.executable, "-m", "kmodlab.labs.gradescope_run", "grade-target",
                "--source", str(source), "--submission", str(submission), "--student", student,
                "--target", target_to_json(target), "--out", str(out)]
        rc = run_child(argv, timeout)
        if rc is None:
            return TargetRun(str(target), None, timed_out=True)
        try:
            return TargetRun(str(target), StudentResult.from_dict(json.loads(out.read_text())))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            why = (f"the grading process ended with status {rc} and no result ({exc}); its "
                   "output is above")
            return TargetRun(str(target), harness_result(lab, str(target), student, why))

    return grade


def grade_target_main(source: Path, submission: Path, student: str, target: str,
                      out: Path) -> int:
    """``grade-target``: grade one target (:func:`target_to_json`) and write its StudentResult
    as JSON.  Any failure of the grader becomes a harness error in that file (never charged)."""
    from kmodlab.labs.grader import GradeOptions, grade_submission
    from kmodlab.labs.lab import load_lab

    config = load_config(source)
    lab = load_lab(source / config.lab)
    label = target
    try:
        chosen = target_from_json(target)
        label = str(chosen)
        result = grade_submission(lab, submission, student, GradeOptions(targets=[chosen]))
    except Exception as exc:  # noqa: BLE001 - a failure of the grader is never the student's
        log.error("grading %s failed:\n%s", label, traceback.format_exc())
        result = harness_result(lab, label, student, f"{type(exc).__name__}: {exc}")
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(result.to_dict()))
    os.replace(tmp, out)
    return 0


def _sigterm_as_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------------------ a submission
def time_limit_reason(config: AutograderConfig, started: bool) -> str:
    when = "while it was being graded" if started else "before its turn"
    return f"the autograder's time limit ({config.time_limit:g} s) ran out {when}"


def grade_targets(config: AutograderConfig, targets: list[Target], grade: GradeTarget,
                  deadline: float, clock: Callable[[], float]
                  ) -> tuple[list[StudentResult], dict[str, str]]:
    """Grade ``targets`` in order until ``deadline``; (results, target -> why not graded).
    A harness error stops early: the submission cannot be scored anyway."""
    parts: list[StudentResult] = []
    not_graded: dict[str, str] = {}
    for index, target in enumerate(targets):
        remaining = deadline - clock()
        if remaining < 1.0:
            not_graded[str(target)] = time_limit_reason(config, started=False)
            continue
        run = grade(target, remaining)
        if run.timed_out or run.result is None:
            not_graded[str(target)] = time_limit_reason(config, started=True)
            continue
        parts.append(run.result)
        if run.result.outcome is Outcome.HARNESS_ERROR:
            for rest in targets[index + 1:]:
                not_graded[str(rest)] = "not started after the harness error above"
            break
    return parts, not_graded


def write_results(results_dir: Path, data: dict[str, Any]) -> Path:
    """results.json, written aside and renamed (Gradescope never reads half a file)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "results.json"
    tmp = results_dir / ".results.json.partial"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def run_autograder(root: Path, grade: GradeTarget | None = None,
                   clock: Callable[[], float] = time.monotonic) -> int:
    """Grade ``root``/submission into ``root``/results/results.json (0), or write none and
    say why on stdout (3: harness error or nothing graded in time)."""
    started = clock()
    source, results_dir = root / "source", root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").unlink(missing_ok=True)
    try:
        from kmodlab.labs.lab import load_lab

        config = load_config(source)
        lab = load_lab(source / config.lab)
        pins = load_pins(source)
        targets = config.lab_targets(lab, pins)
        student, notes = student_from_metadata(root, config.student_id)
        print(f"kmodlab: grading {root / 'submission'} for {lab.id} as {student} on "
              f"{', '.join(map(str, targets))} (time limit {config.time_limit:g} s)", flush=True)
        with tempfile.TemporaryDirectory(prefix="kmodlab-gradescope-") as work:
            grade = grade or child_grader(source, root / "submission", student, Path(work), lab)
            deadline = started + config.time_limit - config.margin
            parts, not_graded = grade_targets(config, targets, grade, deadline, clock)
        result = combine_results(lab, parts)
        data = gradescope_results(lab, result, config, seconds=clock() - started,
                                  not_graded=not_graded, notes=notes)
        if data is None:
            print(instructor_report(result, config, not_graded), flush=True)
            return EXIT_NOT_GRADED
        problems = schema_problems(data)
        if problems:
            print("kmodlab: NOT GRADED: kmodlab made a results.json that breaks Gradescope's "
                  "format (a kmodlab bug, not the student's fault; rerun after fixing):\n  "
                  + "\n  ".join(problems), flush=True)
            return EXIT_NOT_GRADED
        path = write_results(results_dir, data)
        assert result is not None and chargeable(result)
        print(f"kmodlab: {result.outcome.label}, {result.score:g}/{result.max_score:g}"
              + (f" (partial: {', '.join(not_graded)} not graded)" if not_graded else "")
              + f"; wrote {path}", flush=True)
        return 0
    except Exception:  # noqa: BLE001 - whatever failed, the student must not be charged
        print("kmodlab: NOT GRADED: the autograder itself failed (not the student's fault):\n"
              + traceback.format_exc()
              + "No results.json was written; Gradescope records no score.  Fix the image (upload "
                "the zip again) and rerun the autograder on this submission.", flush=True)
        return EXIT_NOT_GRADED


# ------------------------------------------------------------------------------ warm-up
def warm(source: Path) -> int:
    """setup.sh's last step: fetch each target's kernel into the cache and pin its exact
    release (pins.json: grading then never asks apt for a newer one), then, with ``warm:
    solution``, grade the lab's reference solution on it: that builds the guest image, boots
    the guest cold once and saves the snapshot later boots restore, and proves the image grades
    (full marks, no harness error) before any student submits.  Exit 1 fails the image build."""
    from kmodlab.labs.grader import GradeOptions, grade_submission, kernel_for
    from kmodlab.labs.lab import load_lab

    config = load_config(source)
    lab = load_lab(source / config.lab)
    pins: dict[str, dict[str, str]] = {}
    for spec, target in zip(config.targets, config.lab_targets(lab), strict=True):
        kernel = kernel_for(target)
        print(f"kmodlab warm: {spec}: kernel {kernel.release} ({kernel.package_version}) cached",
              flush=True)
        if not target.config:          # a kernel built with fragments is named by its series
            pins[spec] = {"arch": target.arch, "kernel": kernel.release,
                          "flavour": target.flavour}
    tmp = source / (PINS_PATH + ".partial")
    tmp.write_text(json.dumps(pins, indent=2) + "\n")
    os.replace(tmp, source / PINS_PATH)
    if config.warm != "solution":
        return 0
    failures = []
    for target in config.lab_targets(lab, pins):
        result = grade_submission(lab, lab.solution_dir, WARM_STUDENT, GradeOptions(targets=[target]))
        score = "-" if result.score is None else f"{result.score:g}"
        print(f"kmodlab warm: {target}: reference solution {result.outcome.label}, "
              f"{score}/{result.max_score:g} in {result.seconds:.0f} s", flush=True)
        if result.outcome is Outcome.HARNESS_ERROR:
            errors = "; ".join(t.error.strip().splitlines()[0] for t in result.targets if t.error)
            failures.append(f"{target}: harness error: {errors or '?'}")
        elif result.score != result.max_score:
            failed = ", ".join(f"{c.name} ({c.message or c.observed})"[:200]
                               for c in result.checks if not c.passed)
            failures.append(f"{target}: the reference solution scores {score}/"
                            f"{result.max_score:g} ({result.outcome.label}): {failed}")
    for failure in failures:
        print(f"kmodlab warm: FAILED: {failure}", file=sys.stderr, flush=True)
    if failures:
        print("kmodlab warm: this image would not grade correctly, so its build fails here "
              "(fix the cause and upload the zip again)", file=sys.stderr, flush=True)
        return 1
    return 0


# ------------------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kmodlab.labs.gradescope_run",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="grade the submission into results/results.json")
    p.add_argument("--root", help=f"default: ${ROOT_ENV}, else {DEFAULT_ROOT}")
    p = sub.add_parser("warm", help="provision the kernels and warm the guests (setup.sh)")
    p.add_argument("--source", required=True)
    p = sub.add_parser("grade-target", help="grade one target (a child of run)")
    for name in ("--source", "--submission", "--student", "--target", "--out"):
        p.add_argument(name, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="kmodlab: %(message)s")
    # SIGTERM (a stopped grading process, or Gradescope's own timeout) unwinds the stack, so
    # guests stop and the child process groups are killed on the way out.
    signal.signal(signal.SIGTERM, _sigterm_as_exit)
    if args.command == "run":
        return run_autograder(autograder_root(args.root))
    if args.command == "warm":
        return warm(Path(args.source))
    return grade_target_main(Path(args.source), Path(args.submission), args.student,
                             args.target, Path(args.out))


if __name__ == "__main__":
    sys.exit(main())
