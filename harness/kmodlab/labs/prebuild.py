"""Compile the next students' submissions while the current one runs in its guest.

Grading one student is a build (the compiler: one core) then a run (QEMU under TCG: mostly one
core).  On a 2-core machine the two can overlap: :class:`Prebuilder` walks the class queue a
few students ahead of the grader and compiles each submission for every target into the
content-addressed build cache (:func:`kmodlab.labs.sandbox.build_submission` with ``cache``),
where the grader's own build of that student is then a cache hit.  It only ever fills the
cache: a submission it cannot take or build is left for the grader, which reports it as it
always does, so a prebuild can never change a verdict.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from kmodlab.labs.lab import Lab
from kmodlab.labs.schema import Target

log = logging.getLogger(__name__)

AHEAD = 2
"""Students built ahead of the grader: enough to cover a slow build, few enough that a grader
stopped early (Ctrl-C) has wasted little."""


class Prebuilder:
    """A thread compiling ``students`` (id, folder) in order, at most :data:`AHEAD` ahead of
    the grader, which calls :meth:`done` after each student it finished."""

    def __init__(self, lab: Lab, students: Sequence[tuple[str, Path]], targets: list[Target],
                 kernels: dict[str, Any], build_cache: Path, ahead: int = AHEAD) -> None:
        self.lab = lab
        self.students = list(students)
        self.targets = targets
        self.kernels = kernels
        self.build_cache = build_cache
        self._slots = threading.Semaphore(ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kmodlab-prebuild", daemon=True)
        self.built: list[str] = []          # students whose builds are in the cache

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def done(self) -> None:
        """The grader finished one student: one more may be built ahead."""
        self._slots.release()

    def stop(self) -> None:
        self._stop.set()
        self._slots.release()
        self._thread.join(timeout=600)

    def _run(self) -> None:
        for student, folder in self.students:
            self._slots.acquire()
            if self._stop.is_set():
                return
            try:
                self._build(student, folder)
                self.built.append(student)
            except Exception as exc:  # noqa: BLE001 - the grader will meet and report it
                log.debug("prebuild of %s skipped: %s", student, exc)

    def _build(self, student: str, folder: Path) -> None:
        from kmodlab.labs.grader import base_env, model_for
        from kmodlab.labs.params import draw_parameters
        from kmodlab.labs.sandbox import build_submission, take_submission

        intake = take_submission(self.lab, folder)
        params = draw_parameters(self.lab.spec, self.lab.id, student)
        work = Path(tempfile.mkdtemp(prefix="kmodlab-prebuild-"))
        try:
            for target in self.targets:
                if self._stop.is_set():
                    return
                target = self.lab.spec.lab_target(target)
                kernel = self.kernels.get(target.label)
                if kernel is None:
                    return      # the grader provisions its kernels up front: not ours to fetch
                env = base_env(self.lab, kernel, params, student, model_for(self.lab, kernel))
                build_submission(self.lab, intake, kernel, env, work, self.build_cache)
        finally:
            shutil.rmtree(work, ignore_errors=True)


__all__ = ["AHEAD", "Prebuilder"]
