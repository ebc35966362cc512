"""Grade one submission: intake, build, run and check on each target kernel.

    result = grade_submission(lab, Path("subs/alice"), "alice", GradeOptions(work_dir=tmp))
    result.outcome, result.score, result.checks

Classification (kmodlab.labs.results.Outcome): a rejected or non-compiling submission is a
compile error; a crash, hang or console flood ends the run and the checks judge what was
observed before; a failure of the grader itself is a harness error, retried once at once and
never charged.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kmodlab.errors import KmodlabError
from kmodlab.kernels.kernel import Kernel
from kmodlab.labs.checks import evaluate_checks, not_run, unmet_requirements
from kmodlab.labs.engine import HarnessFault, Observations, SubmissionRun, guest_options
from kmodlab.labs.errors import LabError, SubmissionRejected
from kmodlab.labs.lab import Lab
from kmodlab.labs.params import draw_parameters, parameter_env
from kmodlab.labs.results import (
    CheckResult,
    Outcome,
    StudentResult,
    TargetResult,
    merge_checks,
    summarize,
)
from kmodlab.labs.sandbox import Intake, build_submission, take_submission
from kmodlab.labs.schema import Check, Target
from kmodlab.modules.build import BuiltModule

log = logging.getLogger(__name__)


@dataclass
class GradeOptions:
    work_dir: Path | None = None            # build directories (a temp dir if None)
    targets: list[Target] | None = None     # default: the lab's grading targets
    public_only: bool = False               # leave hidden checks out (kmodlab lab selftest)
    build_cache: Path | None = None         # reuse builds of identical inputs
    retries: int = 1                        # immediate retries of a harness error
    keep_work: bool = False
    kernels: dict[str, Kernel] = field(default_factory=dict)   # provisioned, by target label


def kernel_for(target: Target, cache: dict[str, Kernel] | None = None) -> Kernel:
    from kmodlab.kernels import provision_target

    if cache is not None and target.label in cache:
        return cache[target.label]
    kernel = provision_target(target)
    if cache is not None:
        cache[target.label] = kernel
    return kernel


def model_for(lab: Lab, kernel: Kernel) -> Any:
    from kmodlab.model import Model

    nomerge = "slab_nomerge" in lab.spec.guest.cmdline or None
    return Model.for_kernel(kernel, ncpus=lab.spec.guest.cpus, slab_nomerge=nomerge,
                            boot=tuple(lab.spec.guest.cmdline))


def base_env(lab: Lab, kernel: Kernel, params: dict[str, Any], student_id: str,
             model: Any) -> dict[str, Any]:
    extra = {"ncpus": lab.spec.guest.cpus, "page_size": model.PAGE_SIZE, "arch": kernel.arch,
             "kernel": f"{kernel.version[0]}.{kernel.version[1]}", "student": student_id}
    return parameter_env(lab.spec, params, model, extra)


def selected_checks(lab: Lab, public_only: bool) -> list[Check]:
    return [c for c in lab.spec.checks if not (public_only and c.hidden)]


def _sweep_error_paths(lab: Lab, checks: list[Check], kernel: Kernel, built: BuiltModule,
                       obs: Observations) -> None:
    """The fault sweeps of the ``error_paths`` checks (kmodlab.labs.error_paths), after the
    lab's own run."""
    if not any(c.error_paths is not None for c in checks):
        return
    from kmodlab.labs.error_paths import SweepHarnessError, sweep_checks, why_no_sweep

    t0 = time.monotonic()
    try:
        obs.error_paths = sweep_checks(checks, kernel, built, guest_options(lab),
                                       why_no_sweep(obs), obs.load_args)
    except SweepHarnessError as exc:
        raise HarnessFault(str(exc)) from exc
    obs.seconds["error_paths"] = time.monotonic() - t0


def grade_target(lab: Lab, intake: Intake, target: Target, student_id: str,
                 params: dict[str, Any], options: GradeOptions, work_dir: Path) -> TargetResult:
    checks = selected_checks(lab, options.public_only)
    target = lab.spec.lab_target(target)
    t0 = time.monotonic()
    try:
        kernel = kernel_for(target, options.kernels)
        model = model_for(lab, kernel)
    except KmodlabError as exc:
        return TargetResult(str(target), Outcome.HARNESS_ERROR, not_run(checks, "harness error"),
                            error=f"kernel {target} is not available: {exc}")
    env = base_env(lab, kernel, params, student_id, model)
    build = build_submission(lab, intake, kernel, env, work_dir, options.build_cache)
    seconds = {"build": round(build.seconds, 3)}
    if not build.ok:
        why = "submission rejected" if build.rejected else "compile error"
        return TargetResult(str(target), Outcome.COMPILE_ERROR,
                            not_run(checks, f"not run: {why}"), build_output=build.output,
                            seconds=seconds)
    assert build.built is not None
    try:
        obs = SubmissionRun(lab, kernel, build.built, env, guest_options(lab)).execute()
        _sweep_error_paths(lab, checks, kernel, build.built, obs)
    except HarnessFault as exc:
        return TargetResult(str(target), Outcome.HARNESS_ERROR,
                            not_run(checks, "not run: harness error (not charged)"),
                            build_output=build.output, error=str(exc), seconds=seconds)
    except LabError:
        raise
    except Exception as exc:
        log.exception("internal error grading %s on %s", student_id, target)
        return TargetResult(str(target), Outcome.HARNESS_ERROR,
                            not_run(checks, "not run: harness error (not charged)"),
                            build_output=build.output, seconds=seconds,
                            error=f"internal error in the grader: {type(exc).__name__}: {exc}")
    unmet = [] if obs.crash or obs.hang else unmet_requirements(lab.spec, obs, env, model)
    if unmet:
        # The harness did not set the stage (e.g. memory was not fragmented): the checks would
        # judge nothing, and a pass here could be false.
        return TargetResult(str(target), Outcome.HARNESS_ERROR,
                            not_run(checks, "not run: harness error (not charged)"),
                            build_output=build.output, seconds=seconds,
                            error="the lab's requirements did not hold: " + "; ".join(unmet))
    results = evaluate_checks(lab.spec, checks, obs, env, model)
    seconds.update({k: round(v, 3) for k, v in obs.seconds.items()})
    seconds["total"] = round(time.monotonic() - t0, 3)
    if obs.hang:
        outcome = Outcome.HANG
    elif obs.crash:
        outcome = Outcome.CRASH
    elif obs.flood or not all(r.passed for r in results):
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.PASSED
    crash = obs.crash
    if obs.hang and obs.crash:          # a detector's report: what it found, then the report
        crash = f"{obs.hang}\n\n{obs.crash}"
    elif obs.hang:                      # a timeout: what did not finish, and the console
        crash = f"{obs.hang}\n\nlast console lines:\n" + "\n".join(
            obs.console_tail.splitlines()[-25:])
    return TargetResult(str(target), outcome, results, build_output=build.output, crash=crash,
                        notes=list(obs.notes), console_tail=obs.console_tail[-8000:],
                        seconds=seconds)


def grade_submission(lab: Lab, folder: Path, student_id: str,
                     options: GradeOptions | None = None) -> StudentResult:
    """Grade ``folder`` as ``student_id`` on every target of ``options`` (see module doc)."""
    options = options or GradeOptions()
    t0 = time.monotonic()
    targets = [lab.spec.lab_target(t) for t in options.targets or lab.spec.grading_targets]
    params = draw_parameters(lab.spec, lab.id, student_id)
    checks = selected_checks(lab, options.public_only)
    max_score = sum(c.points for c in checks)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        intake = take_submission(lab, folder)
    except SubmissionRejected as exc:
        rows = not_run(checks, "not run: submission rejected")
        targets_out = [TargetResult(str(t), Outcome.COMPILE_ERROR, rows,
                                    build_output=f"submission rejected: {exc}") for t in targets]
        return StudentResult(student_id, lab.id, lab.digest, "", Outcome.COMPILE_ERROR, 0.0,
                             max_score, merge_checks(targets_out), targets_out, params,
                             graded_at=stamp, seconds=time.monotonic() - t0,
                             public_only=options.public_only)
    own_tmp = None
    work = options.work_dir
    if work is None:
        own_tmp = Path(tempfile.mkdtemp(prefix="kmodlab-lab-"))
        work = own_tmp
    work.mkdir(parents=True, exist_ok=True)
    results: list[TargetResult] = []
    attempts = 1
    try:
        for target in targets:
            result = grade_target(lab, intake, target, student_id, params, options, work)
            tries = 0
            while result.outcome is Outcome.HARNESS_ERROR and tries < options.retries:
                tries += 1
                attempts += 1
                log.warning("%s on %s: harness error, retrying: %s", student_id, target,
                            result.error.splitlines()[0] if result.error else "")
                result = grade_target(lab, intake, target, student_id, params, options, work)
            results.append(result)
    finally:
        if own_tmp is not None or not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    outcome, merged, score = summarize(results)
    return StudentResult(student_id, lab.id, lab.digest, intake.digest, outcome, score,
                         max_score, merged, results, params, list(intake.notes), stamp,
                         round(time.monotonic() - t0, 3), attempts, options.public_only)


def visible_checks(result: StudentResult) -> list[CheckResult]:
    return [c for c in result.checks if not (result.public_only and c.hidden)]
