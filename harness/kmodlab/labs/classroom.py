"""Grade a whole class: every student folder, with progress, resume and class reports.

    results = grade_class(lab, Path("submissions"), Path("reports"))

``submissions/`` holds one folder per student (the folder name is the student id).  Results go
to ``reports/students/<id>/`` as soon as each student is done, and to ``reports/state.jsonl``:
a rerun of the same command skips students whose submission, lab and targets are unchanged and
whose result was not a harness error, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from kmodlab.labs.escape import slug
from kmodlab.labs.grader import GradeOptions, grade_submission, kernel_for
from kmodlab.labs.jail import require_jail
from kmodlab.labs.lab import Lab
from kmodlab.labs.prebuild import Prebuilder
from kmodlab.labs.reports import student_folder, write_class_reports, write_student_reports
from kmodlab.labs.results import Outcome, StudentResult
from kmodlab.labs.sandbox import prune_build_cache, take_submission
from kmodlab.labs.schema import Target
from kmodlab.paths import cache_dir

log = logging.getLogger(__name__)

STATE_FILE = "state.jsonl"
STATE_VERSION = 1


@dataclass
class ClassRun:
    results: list[StudentResult] = field(default_factory=list)
    graded: list[str] = field(default_factory=list)     # graded in this run
    reused: list[str] = field(default_factory=list)     # taken from the state file
    interrupted: bool = False

    @property
    def harness_errors(self) -> list[str]:
        return [r.student for r in self.results if r.outcome is Outcome.HARNESS_ERROR]


def student_folders(submissions: Path) -> list[tuple[str, Path]]:
    """(student id, folder) for every sub-folder; symlinked folders are not followed."""
    if not submissions.is_dir():
        from kmodlab.labs.errors import LabError

        raise LabError(f"{submissions} is not a folder of student submissions")
    out = []
    for entry in sorted(os.scandir(submissions), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        out.append((entry.name, Path(entry.path)))
    return out


def run_key(lab: Lab, submission_digest: str, targets: list[Target], public_only: bool) -> str:
    h = hashlib.sha256()
    for part in (str(STATE_VERSION), lab.digest, submission_digest,
                 ",".join(str(t) for t in targets), str(public_only)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


class StateFile:
    """Append-only JSON lines: {"key", "student", "result"}; the last line of a student wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[str, tuple[str, StudentResult]]:
        done: dict[str, tuple[str, StudentResult]] = {}
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return done
        for line in lines:
            try:
                record = json.loads(line)
                done[record["student"]] = (record["key"], StudentResult.from_dict(record["result"]))
            except (ValueError, KeyError, TypeError):
                continue      # a line cut short by an interruption
        return done

    def append(self, key: str, result: StudentResult) -> None:
        line = json.dumps({"key": key, "student": result.student, "result": result.to_dict()})
        with self._lock, open(self.path, "a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _submission_digest(lab: Lab, folder: Path) -> str:
    try:
        return take_submission(lab, folder).digest
    except Exception:  # noqa: BLE001 - a rejected submission is graded (and fails) later
        h = hashlib.sha256(folder.name.encode("utf-8", "surrogateescape"))
        return "rejected-" + h.hexdigest()


def grade_class(lab: Lab, submissions: Path, out: Path, *, targets: list[Target] | None = None,
                jobs: int = 1, regrade: bool = False, progress: bool = True,
                on_result: Callable[[StudentResult], None] | None = None,
                stop: threading.Event | None = None,
                only: frozenset[str] | None = None, prebuild: bool | None = None) -> ClassRun:
    """Grade every folder of ``submissions`` into ``out`` (see the module docstring); with
    ``only``, just those students (a shard: kmodlab.labs.shards).  ``prebuild`` compiles the
    next students while the current ones run (kmodlab.labs.prebuild); by default only when
    ``jobs`` leaves a core free: measured on 2 cores (benchmarks/grading_bench.py, x86_64 6.1,
    builds replayed: kmodlab.labs.kbuild_replay), it takes one job from 2,647 to 3,925
    submissions/hour, and two jobs from 3,726 to 3,984, within what two runs of one differ."""
    targets = targets or lab.spec.grading_targets
    out.mkdir(parents=True, exist_ok=True)
    state = StateFile(out / STATE_FILE)
    previous = {} if regrade else state.load()
    kernels: dict[str, object] = {}
    for t in targets:
        kernel = kernel_for(t, kernels)   # type: ignore[arg-type]  # provision once, up front
        # No jail, no grading: refuse before the first student rather than at the first build.
        require_jail(kernel)
    folders = [(s, f) for s, f in student_folders(submissions) if only is None or s in only]
    run = ClassRun()
    todo: list[tuple[str, Path, str]] = []
    final: dict[str, StudentResult] = {}
    for student, folder in folders:
        key = run_key(lab, _submission_digest(lab, folder), targets, False)
        old = previous.get(student)
        if old and old[0] == key and old[1].outcome is not Outcome.HARNESS_ERROR:
            final[student] = old[1]
            run.reused.append(student)
        else:
            todo.append((student, folder, key))
    stop = stop or threading.Event()
    work_root = out / "work"
    build_cache = cache_dir("lab-builds")
    prune_build_cache(build_cache)

    def grade_one(student: str, folder: Path, key: str) -> StudentResult:
        work = work_root / slug(student)
        options = GradeOptions(work_dir=work, targets=targets, build_cache=build_cache,
                               kernels=kernels)  # type: ignore[arg-type]
        result = grade_submission(lab, folder, student, options)
        write_student_reports(lab, result, student_folder(out, student))
        state.append(key, result)
        return result

    reporter = _Progress(len(folders), len(run.reused), enabled=progress)
    if prebuild is None:
        prebuild = max(1, jobs) < (os.cpu_count() or 1)
    ahead = [(s, f) for s, f, _ in todo][max(1, jobs):] if prebuild else []
    try:
        with reporter, Prebuilder(lab, ahead, targets, kernels, build_cache) as prebuilder, \
                ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            pending: dict[Future[StudentResult], str] = {}
            queue = list(todo)
            while queue or pending:
                while queue and len(pending) < max(1, jobs) and not stop.is_set():
                    student, folder, key = queue.pop(0)
                    reporter.start(student)
                    pending[pool.submit(grade_one, student, folder, key)] = student
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    student = pending.pop(fut)
                    result = fut.result()
                    final[student] = result
                    run.graded.append(student)
                    prebuilder.done()
                    reporter.finish(result)
                    if on_result:
                        on_result(result)
    except KeyboardInterrupt:
        stop.set()
        run.interrupted = True
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    if stop.is_set():
        run.interrupted = True
    run.results = [final[s] for s, _ in folders if s in final]
    write_class_reports(lab, run.results, out)
    return run


class _Progress:
    """A rich progress bar (plain lines when stderr is not a terminal)."""

    def __init__(self, total: int, already: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.already = already
        self._progress = None
        self._task = None
        self._t0 = time.monotonic()

    def __enter__(self) -> Self:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        self._progress = Progress(TextColumn("[bold]grading[/]"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  TextColumn("{task.description}"), console=console)
        self._progress.__enter__()
        self._task = self._progress.add_task("", total=self.total, completed=self.already)
        if self.already:
            self._progress.console.print(f"resuming: {self.already} student(s) already graded")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def start(self, student: str) -> None:
        if self._progress is not None:
            from rich.markup import escape

            self._progress.update(self._task, description=escape(student[:40]))

    def finish(self, result: StudentResult) -> None:
        if self._progress is None:
            return
        from rich.markup import escape

        score = "-" if result.score is None else f"{result.score:g}/{result.max_score:g}"
        color = {"passed": "green", "failed": "yellow", "harness_error": "magenta"}.get(
            result.outcome.value, "red")
        self._progress.console.print(f"  {escape(result.student[:60])}: "
                                     f"[{color}]{result.outcome.label}[/] {score} "
                                     f"({result.seconds:.1f} s)")
        self._progress.advance(self._task)
