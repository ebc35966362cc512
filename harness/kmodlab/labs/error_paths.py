"""A lab's ``error_paths`` checks: the student's module with each allocation failed in turn.

After the lab's own steps ran cleanly, every ``error_paths`` check gets a fault sweep of its
path (:func:`kmodlab.faults.sweep.sweep_failures`, the engine of ``kmodlab faults``) on the
same kernel and guest settings: one pristine guest per failed allocation, so nothing the
student's module did in one run reaches the next.  The check passes when every allocation
site the sweep reached was handled and the path was swept to its end.

Who is charged: a sweep that cannot start because the module itself is not clean without an
injected failure (:class:`~kmodlab.faults.sweep.ModuleNotClean`, a crash or hang while loading
it plainly) fails the check; a failure of the grader's own work (a guest that does not start)
is a harness error, never the student's.

What a student reads is redacted to file names: sweep details carry symbolized frames, whose
paths name the grader's build folder and the kernel's headers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kmodlab.errors import CommandTimeout, KernelCrash, KmodlabError
from kmodlab.guest import GuestOptions
from kmodlab.kernels.kernel import Kernel
from kmodlab.labs.schema import Check
from kmodlab.modules.build import BuiltModule

_PATH = re.compile(r"(?<![\w.])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def redact_paths(text: str) -> str:
    """Every absolute path in ``text`` cut to its last component."""
    return _PATH.sub(r"\1", text)


@dataclass(frozen=True)
class SiteRow:
    """One allocation site as a student reads it."""

    site: str
    outcome: str
    calls: tuple[int, ...]
    detail: str

    def describe(self) -> str:
        calls = ", ".join(map(str, self.calls[:6])) + (", ..." if len(self.calls) > 6 else "")
        text = f"{self.site}: {self.outcome} (failed call {calls})"
        return text + (f": {self.detail}" if self.detail and self.outcome != "handled" else "")


@dataclass
class ErrorPathResult:
    """One check's sweep: the sites, whether every path was swept to its end, or why the
    sweep could not run (``missing``)."""

    path: str
    sites: list[SiteRow]
    module_sites: int = 0
    complete: bool = False
    runs: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    missing: str = ""

    @property
    def unhandled(self) -> list[SiteRow]:
        return [s for s in self.sites if s.outcome != "handled"]


def summarize(path: str, report) -> ErrorPathResult:
    """A :class:`~kmodlab.faults.sweep.FaultReport` as the rows a student reads."""
    rows = [SiteRow(redact_paths(s.site), s.outcome, s.runs, redact_paths(s.detail)[:600])
            for sweep in report.sweeps for s in sweep.sites]
    # "(kernel) frame" (a crash outside the module) and "(unknown: __GFP_NOWARN)" (a call
    # that printed no stack) are not sites of the module's own
    module_sites = len({s.site for sweep in report.sweeps for s in sweep.sites
                        if not s.site.startswith("(")})
    notes = tuple(redact_paths(n).replace("--max-nth", "max_nth") for sweep in report.sweeps
                  for n in sweep.notes if not n.startswith("the first "))
    return ErrorPathResult(path, rows, module_sites, all(s.complete for s in report.sweeps),
                           report.runs, report.seconds, notes)


class SweepHarnessError(KmodlabError):
    """The sweep failed for a reason that is not the student's."""


def sweep_checks(checks: Iterable[Check], kernel: Kernel, built: BuiltModule,
                 options: GuestOptions, why_not: str = "",
                 load_args: tuple[str, ...] = ()) -> dict[str, ErrorPathResult]:
    """Run the sweep of every ``error_paths`` check (by check name), loading the module with
    ``load_args`` (the student's parameters, as the lab's load step gave them).  ``why_not``:
    the lab's own run did not end cleanly, so no sweep is run and every check says why."""
    from kmodlab.faults.sweep import ModuleNotClean, sweep_failures

    built = replace(built, load_args=tuple(load_args))

    out: dict[str, ErrorPathResult] = {}
    for check in checks:
        spec = check.error_paths
        if spec is None:
            continue
        if why_not:
            out[check.name] = ErrorPathResult(spec.path, [], missing=why_not)
            continue
        t0 = time.monotonic()
        try:
            report = sweep_failures(kernel, built, paths=[spec.path], options=options,
                                    max_nth=spec.max_nth, timeout=spec.timeout,
                                    kmemleak_scan=spec.kmemleak)
        except ModuleNotClean as exc:
            out[check.name] = ErrorPathResult(spec.path, [], missing=redact_paths(str(exc)))
            continue
        except KernelCrash as exc:
            out[check.name] = ErrorPathResult(
                spec.path, [], missing=f"the kernel crashed ({exc.kind}) with no failure "
                                       "injected: the module is not stable from run to run")
            continue
        except CommandTimeout as exc:
            out[check.name] = ErrorPathResult(
                spec.path, [], missing=f"a step hung with no failure injected: "
                                       f"{redact_paths(str(exc).splitlines()[0])[:200]}")
            continue
        except KmodlabError as exc:
            raise SweepHarnessError(f"the fault sweep of the {spec.path} path failed: "
                                    f"{str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
        result = summarize(spec.path, report)
        result.seconds = time.monotonic() - t0
        out[check.name] = result
    return out


def why_no_sweep(obs) -> str:
    """Why the lab's run rules out a sweep ('' when it does not): the sweep judges error
    paths against a clean load and unload."""
    if obs.stopped_early:
        return obs.stopped_early
    if obs.load is None or not obs.load.ok:
        return "the module did not load"
    if obs.unload is not None and not obs.unload.ok:
        return "the module could not be unloaded"
    return ""


__all__ = ["ErrorPathResult", "SiteRow", "SweepHarnessError", "redact_paths", "summarize",
           "sweep_checks", "why_no_sweep"]
