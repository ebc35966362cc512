"""Which detector catches which bug: every class of the bugs family run on kernels with and
without debugging options, measured.

One *cell* is one bug class run once (``kmodlab run bugs -p bug=CLASS``) on one kernel, in a
guest of its own (a crash ends a guest's life; a snapshot makes the next one cheap).  Its
outcome says whether anything reported the bug, what (the first report's detector and bug, in
:mod:`kmodlab.observe.reports`' terms, or kmodlab's own leak check), and whether the report's
frames point at the module's faulty line (the one ``kmodlab: the bug`` marks).

Columns are configurations of one arch's kernel: Debian's stock kernel, the stock kernel with
the ``slub-debug`` boot parameters, and kernels built with ``debug-memory`` and
``debug-context`` (kmodlab.kernels.kbuild).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from kmodlab.errors import CommandTimeout, GuestError, KernelCrash
from kmodlab.kernels.kernel import Kernel
from kmodlab.observe.reports import report_details

CONFIGS = ("", "slub-debug", "debug-memory", "debug-context")
"""The columns: "" is Debian's stock kernel."""


@dataclass(frozen=True)
class Cell:
    """The measured outcome of one bug class on one kernel."""

    bug: str
    arch: str
    config: str                 # "" for Debian's stock kernel
    kernel: str                 # the release that ran it
    outcome: str                # crash, report, leak, silent, hang, error
    detected: bool
    by: str                     # "KASAN slab-out-of-bounds", "kmemleak", "oops", "" ...
    line: str = ""              # "kml_bugs.c:57": the module line the report's frames name
    at_bug_line: bool = False   # that line is the faulty statement
    seconds: float = 0.0
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def column(self) -> str:
        return self.config or "stock"


def _first_line(lines: list[str], bug_line: int) -> tuple[str, bool]:
    """The first module source line the report names (``file.c:N``) and whether it is the bug's
    (any frame naming the bug line counts).  ``lines`` are the symbolizer's: ``frame at
    /path/file.c:N`` or ``frame at /path/file.c:N (in inline at header.h:M)``."""
    names = []
    for text in lines:
        at = text.split(" (in ")[0].rsplit(" at ", 1)[-1]
        names.append(at.rsplit("/", 1)[-1])
    hit = next((n for n in names if n.endswith(f":{bug_line}")), None)
    return (hit or (names[0] if names else "")), hit is not None


_LABELS = {"oops": "oops", "bug": "BUG", "warning": "WARNING", "panic": "panic",
           "slab_leak": "SLUB objects remaining", "lockup": "lockup"}


def _by(kind: str, text: str) -> str:
    """What reported it: a memory-debugging report's detector and bug, else the report's kind
    and where the kernel says it happened (``BUG at mm/slub.c:419``)."""
    details = report_details(text)
    if details is not None:
        return f"{details.detector} {details.bug}"
    from kmodlab.observe.dmesg import classify, strip_prefixes

    for line in strip_prefixes(text).splitlines():
        found = classify(line)
        if found is not None and not found[0].startswith("module_"):
            subject = found[1].split(" ")[0] if found[0] in ("bug", "warning") else found[1]
            label = _LABELS.get(found[0], found[0])
            return f"{label} at {subject}" if found[0] in ("bug", "warning") else \
                f"{label}: {subject[:60]}"
    return _LABELS.get(kind, kind)


def measure_cell(kernel: Kernel, bug: str, at: str = "load", *, timeout: float = 60.0) -> Cell:
    """Run bug class ``bug`` once on ``kernel`` in a fresh guest and classify what happened."""
    from kmodlab.guest import Guest
    from kmodlab.modules import build, parse_params
    from kmodlab.modules.bugs import bug_line
    from kmodlab.runner import run_module

    built = build("bugs", parse_params("bugs", [f"bug={bug}", f"at={at}"]), kernel)
    line = bug_line(built.source_path.read_text())
    config = "+".join(kernel.config_names)
    start = time.monotonic()

    def cell(outcome: str, detected: bool, by: str, report: str = "", note: str = "") -> Cell:
        where, exact = _first_line(built.source_lines(report), line) if report else ("", False)
        return Cell(bug, kernel.arch, config, kernel.release, outcome, detected, by, where,
                    exact, round(time.monotonic() - start, 1), note)

    try:
        with Guest(kernel) as guest:
            run = run_module(guest, built, timeout=timeout)
    except KernelCrash as crash:
        return cell("crash", True, _by(crash.kind, crash.excerpt), crash.excerpt)
    except CommandTimeout as exc:
        return cell("hang", True, "hang", note=str(exc).splitlines()[0])
    except GuestError as exc:
        return cell("error", False, "", note=str(exc).splitlines()[0])
    complaints = [e for phase in (run.load, run.unload) if phase is not None
                  for e in phase.complaints]
    if complaints:
        first = complaints[0]
        return cell("report", True, _by(first.kind, first.text), first.text)
    if run.leaks is not None and not run.leaks.clean:
        memleak = run.leaks.of_kind("kmemleak")
        found = [*(["kmodlab leak check"] if len(memleak) < len(run.leaks.leaks) else []),
                 *(["kmemleak"] if memleak else [])]
        return cell("leak", True, " + ".join(found), memleak[0].where if memleak else "",
                    note=run.leaks.summary())
    failed = [p for p in (run.load, run.unload) if p is not None and not p.command.ok]
    if failed:
        return cell("error", False, "", note=f"{failed[0].name} failed: "
                                             f"{failed[0].command.output.strip()[-200:]}")
    return cell("silent", False, "")


def measure(kernels: Iterable[Kernel], bugs: Iterable[str],
            report: Callable[[Cell], None] | None = None) -> list[Cell]:
    """Every bug class on every kernel (kernel-major, so each kernel's snapshot is reused)."""
    cells = []
    bugs = list(bugs)
    for kernel in kernels:
        for bug in bugs:
            cell = measure_cell(kernel, bug)
            cells.append(cell)
            if report is not None:
                report(cell)
    return cells


__all__ = ["CONFIGS", "Cell", "measure", "measure_cell"]
