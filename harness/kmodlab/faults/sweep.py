"""Fail every allocation a module makes, one at a time, and judge how it copes.

For one *path* (the module's init, its exit, or a user command that exercises it) and
N = 1, 2, ...: a pristine guest (a snapshot restore), the task running that path made to fail
its N-th allocation (:mod:`kmodlab.faults.injection`), the outcome observed; the sweep ends at
the first N that injects nothing (the path made fewer than N allocations).

The task's first calls are the kernel's (exec, the module loader); the module's own come
later.  Where the failing call's stack says which side of that line it is on -- the module
loader's ``do_init_module()`` (kernel/module/main.c, noinline) or the module's own frames for
init, ``delete_module()`` for exit -- the first N inside the module is found by bisection, so
the loader's few dozen calls cost a handful of runs.  A call whose stack is unknown (an
allocation with __GFP_NOWARN prints none) counts as inside, so bisection can only start the
sweep early, never skip a site.  A user command gets a linear sweep.

A *site* is the module's innermost frame in the failing call's stack, symbolized to file:line:
an allocation the module makes itself, or a kernel call it makes that allocates.  Each run at a
site is judged, worst first:

* ``crashed``: an oops or BUG (its first module line is the culprit);
* ``hung``: the path did not finish in time;
* ``leaked``: something stayed allocated after the module was gone (kmemleak on kernels that
  have it, the /proc leak check otherwise and always);
* ``reported``: the kernel complained about something beyond the injected failure (a WARN, a
  KASAN report on the error path...);
* ``handled``: init returned an error (or coped) and nothing of the above.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

from kmodlab import kmemleak
from kmodlab.channel.protocol import shell_quote
from kmodlab.errors import CommandTimeout, ConfigError, KernelCrash, KmodlabError
from kmodlab.faults.injection import (
    InjectedFailure,
    arm_command,
    inject_command,
    injected_command,
    injected_failure,
    parse_injected,
    require_fault_injection,
)
from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kernel import Kernel
from kmodlab.leaks import (
    DEFAULT_TOLERANCES,
    Footprint,
    Tolerances,
    capture,
    find_leaks,
    read_footprint,
)
from kmodlab.modules.build import BuiltModule
from kmodlab.observe.dmesg import KernelEvent, find_events
from kmodlab.phases import PhaseEngine

PATHS = ("init", "exit", "command")
OUTCOMES = ("crashed", "hung", "leaked", "reported", "handled")
"""A site's outcomes, worst first; ``handled`` is the only good one."""
KERNEL = "kernel"
"""The outcome of a run whose failing call has no frame of the module (the loader's own)."""
GUEST_DIR = "/tmp/kmodlab"

# Where the loader hands over to the module (kernel/module/main.c: do_init_module() is
# noinline; delete_module is the syscall that calls mod->exit()).
_INSIDE = {"init": re.compile(r"\bdo_init_module\b"), "exit": re.compile(r"sys_delete_module")}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FaultRun:
    """The outcome of failing the ``nth`` allocation of one path."""

    path: str
    nth: int
    injected: str | None        # failslab / fail_page_alloc; None: nothing left to fail
    site: str | None            # "kml_x.c:42" (the module's line); None: not the module's
    frame: str                  # the failing call's innermost module frame (or first frame)
    outcome: str                # one of OUTCOMES, or KERNEL
    detail: str = ""
    returned: int | None = None  # exit status of the injected command (insmod, rmmod...)
    seconds: float = 0.0

    @property
    def judged(self) -> bool:
        return self.site is not None or self.outcome in ("crashed", "hung")


@dataclass(frozen=True)
class FaultSite:
    """Every run that failed a call at one module line, and the worst outcome among them."""

    path: str
    site: str
    frame: str
    runs: tuple[int, ...]
    outcome: str
    detail: str

    @property
    def handled(self) -> bool:
        return self.outcome == "handled"


@dataclass
class FaultSweep:
    """One path of one module, swept."""

    module: str
    kernel: str
    path: str
    command: str | None = None
    runs: list[FaultRun] = field(default_factory=list)
    skipped: int = 0            # calls before the module's code, passed over by bisection
    probes: int = 0             # runs spent by the bisection
    complete: bool = False      # ended at an N that injected nothing (not at max_nth)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def sites(self) -> list[FaultSite]:
        """One entry per module line (and one per crash or hang outside the module)."""
        grouped: dict[str, list[FaultRun]] = {}
        for run in self.runs:
            if run.judged:
                key = run.site or f"(kernel) {run.frame}"
                grouped.setdefault(key, []).append(run)
        out = []
        for key, runs in grouped.items():
            worst = min(runs, key=lambda r: OUTCOMES.index(r.outcome)
                        if r.outcome in OUTCOMES else len(OUTCOMES))
            out.append(FaultSite(self.path, key, worst.frame, tuple(r.nth for r in runs),
                                 worst.outcome, worst.detail))
        return out

    @property
    def unhandled(self) -> list[FaultSite]:
        return [s for s in self.sites if not s.handled]

    @property
    def ok(self) -> bool:
        return self.complete and not self.unhandled

    def as_dict(self) -> dict:
        return {"module": self.module, "kernel": self.kernel, "path": self.path,
                "command": self.command, "ok": self.ok, "complete": self.complete,
                "skipped": self.skipped, "probes": self.probes,
                "seconds": round(self.seconds, 2), "notes": self.notes,
                "sites": [asdict(s) | {"handled": s.handled} for s in self.sites],
                "runs": [asdict(r) for r in self.runs]}


@dataclass
class FaultReport:
    """Every swept path of one module on one kernel."""

    sweeps: list[FaultSweep]

    @property
    def sites(self) -> list[FaultSite]:
        return [s for sweep in self.sweeps for s in sweep.sites]

    @property
    def unhandled(self) -> list[FaultSite]:
        return [s for s in self.sites if not s.handled]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.sweeps)

    @property
    def runs(self) -> int:
        return sum(len(s.runs) + s.probes for s in self.sweeps)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.sweeps)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "runs": self.runs, "seconds": round(self.seconds, 2),
                "sweeps": [s.as_dict() for s in self.sweeps]}


@dataclass
class _Setup:
    kernel: Kernel
    built: BuiltModule
    options: GuestOptions
    timeout: float
    command: str | None
    tolerances: Tolerances
    use_kmemleak: bool
    footprint: Footprint | None = None

    @property
    def guest_path(self) -> str:
        return str(PurePosixPath(GUEST_DIR) / self.built.ko_path.name)

    @property
    def insmod(self) -> str:
        return " ".join(["insmod", shell_quote(self.guest_path),
                         *map(shell_quote, self.built.load_args)])

    @property
    def rmmod(self) -> str:
        return f"rmmod {shell_quote(self.built.module_name)}"


def _prepare(guest: Guest, setup: _Setup) -> None:
    guest.run(f"mkdir -p {GUEST_DIR} && {arm_command()}", isolate=False, must_succeed=True)
    guest.push(setup.built.ko_path, setup.guest_path)


def _module_frame(setup: _Setup, text: str) -> tuple[str | None, str]:
    """(``file.c:42``, ``func+0x1d/0x60 [mod] at .../file.c:42``) of the innermost frame of
    the module in a report, or (None, the report's first frame)."""
    lines = setup.built.source_lines(text)
    if lines:
        frame = lines[0]
        at = frame.split(" (in ")[0].rsplit(" at ", 1)[-1]
        return at.rsplit("/", 1)[-1], frame
    mine = re.search(rf"\S+\+0x[0-9a-f]+/0x[0-9a-f]+ \[{re.escape(setup.built.module_name)}\]",
                     text)
    if mine:       # a frame of the module without line information (no debug info)
        return mine.group(0), mine.group(0)
    frames = re.findall(r"^\s*(?:\? )?([A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+)", text, re.MULTILINE)
    useful = [f for f in frames if not f.startswith(("dump_stack", "should_fail", "show_stack",
                                                        "__should_fail", "fail_dump"))]
    return None, (useful[0] if useful else "")


def _failure_from_console(guest: Guest, offset: int) -> InjectedFailure | None:
    """After a crash, the injection report from the console (the phase record is lost)."""
    try:
        text = guest.console_text()[offset:]
    except (OSError, KmodlabError):
        return None
    return injected_failure(find_events(text))


def _console_size(guest: Guest) -> int:
    try:
        return len(guest.console_text())
    except (OSError, KmodlabError):
        return 0


def _trial(setup: _Setup, path: str, nth: int, *, observe: bool) -> tuple[FaultRun, bool]:
    """One pristine guest, the ``nth`` allocation of ``path`` failed.  Returns the run and
    whether the failing call was at or past the module's code (for the bisection).
    ``observe``: judge the outcome (snapshots, leak checks); otherwise only where it failed."""
    t0 = time.monotonic()
    with Guest(setup.kernel, setup.options) as guest:
        _prepare(guest, setup)
        engine = PhaseEngine(guest)
        before = capture(guest) if observe else None
        memleak = observe and setup.use_kmemleak and kmemleak.start(guest)
        offset = _console_size(guest)
        returned: int | None = None
        events: list[KernelEvent] = []
        loaded = False
        try:
            if path != "init":
                load = engine.run("load", setup.insmod, timeout=setup.timeout)
                if not load.command.ok:
                    raise KmodlabError(f"{setup.built.module_name} no longer loads without an "
                                       f"injected failure: {load.command.output.strip()[-300:]}")
                loaded = True
            target = {"init": setup.insmod, "exit": setup.rmmod,
                      "command": setup.command or "true"}[path]
            record = engine.run(path, inject_command(nth, target), timeout=setup.timeout)
            returned = record.command.exit_status
            events = list(record.events)
            if path == "init":
                loaded = record.command.ok
            elif path == "exit":
                loaded = not record.command.ok
            injected = parse_injected(guest.run(injected_command(), isolate=False).stdout)
            failure = injected_failure(events)
        except KernelCrash as crash:
            failure = _failure_from_console(guest, offset)
            site, frame = _module_frame(setup, crash.excerpt)
            if site is None and failure is not None:
                site, frame = _module_frame(setup, failure.text)
            return FaultRun(path, nth, failure.attribute if failure else "unknown", site, frame,
                            "crashed", _crash_detail(setup, crash), None,
                            time.monotonic() - t0), True
        except CommandTimeout as exc:
            failure = _failure_from_console(guest, offset)
            site, frame = _module_frame(setup, failure.text) if failure else (None, "")
            return FaultRun(path, nth, failure.attribute if failure else "unknown", site, frame,
                            "hung", str(exc).splitlines()[0], None,
                            time.monotonic() - t0), True
        if injected is None:
            return FaultRun(path, nth, None, None, "", "handled", "nothing left to fail",
                            returned, time.monotonic() - t0), True
        site, frame = _module_frame(setup, failure.text) if failure else (None, "")
        inside = failure is None or site is not None or (
            path in _INSIDE and failure.mentions(_INSIDE[path]))
        if not observe:
            return FaultRun(path, nth, injected, site, frame, KERNEL if site is None else "",
                            "", returned, time.monotonic() - t0), inside
        outcome, detail = _judge_after(guest, engine, setup, before, events, loaded, memleak)
        if site is None and failure is None:
            detail = ("the failing call printed no stack (__GFP_NOWARN), so its site is "
                      f"unknown; {detail}")
        return FaultRun(path, nth, injected, site, frame,
                        outcome if site is not None or outcome in ("crashed", "hung")
                        else KERNEL, detail, returned, time.monotonic() - t0), inside


def _crash_detail(setup: _Setup, crash: KernelCrash) -> str:
    lines = setup.built.source_lines(crash.excerpt)
    first = str(crash).splitlines()[0] if str(crash) else crash.kind
    return first + (f"; in your source: {lines[0]}" if lines else "")


def _judge_after(guest: Guest, engine: PhaseEngine, setup: _Setup, before, events, loaded: bool,
                 memleak: bool) -> tuple[str, str]:
    """Unload what is still loaded, then leaks and the kernel's complaints."""
    if loaded:
        unload = engine.run("unload", setup.rmmod, timeout=setup.timeout)
        events = [*events, *unload.events]
        if not unload.command.ok:
            return "leaked", ("the module could not be unloaded afterwards: "
                              f"{unload.command.output.strip()[-200:]}")
    after = capture(guest)
    report = find_leaks(before, after, module=setup.built.module_name,
                        footprint=setup.footprint, tolerances=setup.tolerances)
    leaks = list(report.leaks)
    if memleak:
        found = kmemleak.scan(guest)
        leaks += kmemleak.module_leaks(found, setup.built.module_name, setup.footprint,
                                       source=lambda f: (setup.built.source_lines(f) or [f])[0])
    if leaks:
        return "leaked", "; ".join(leak.describe() for leak in leaks[:3])
    complaints = [e for e in events if e.is_complaint]
    if complaints:
        first = complaints[0]
        lines = setup.built.source_lines(first.text)
        return "reported", (f"{first.kind}: {first.subject[:120]}"
                            + (f" ({lines[0]})" if lines else ""))
    return "handled", ""


def _calibrate(setup: _Setup) -> None:
    """A clean load and unload with nothing injected: the module must pass it (otherwise
    every site would inherit its problem), and its addresses are recorded -- a pristine guest
    loads it at the same place every time, so kmemleak's bare addresses of a module that
    failed to load still name its functions."""
    with Guest(setup.kernel, setup.options) as guest:
        _prepare(guest, setup)
        engine = PhaseEngine(guest)
        before = capture(guest)
        load = engine.run("load", setup.insmod, timeout=setup.timeout)
        if not load.command.ok:
            raise KmodlabError(f"{setup.built.module_name} does not load even without an "
                               f"injected failure (exit {load.command.exit_status}): "
                               f"{load.command.output.strip()[-300:]}; `kmodlab run` shows why")
        setup.footprint = read_footprint(guest, setup.built.module_name, setup.built.ko_path)
        outcome, detail = _judge_after(guest, engine, setup, before, list(load.events), True,
                                       False)
        if outcome != "handled":
            raise KmodlabError(f"{setup.built.module_name} is not clean even without an injected "
                               f"failure ({outcome}: {detail}); fix that first (`kmodlab run` "
                               "shows it)")


def _first_inside(setup: _Setup, sweep: FaultSweep, max_nth: int,
                  progress: Progress | None) -> int:
    """The smallest N whose failing call is at or past the module's code (bisection)."""
    if sweep.path not in _INSIDE:
        return 1
    lo, hi = 0, 1
    while True:
        run, inside = _trial(setup, sweep.path, hi, observe=False)
        sweep.probes += 1
        if progress:
            progress(f"{sweep.path}: bisecting, call {hi}: {'module' if inside else 'loader'}")
        if inside or run.injected is None or run.outcome in ("crashed", "hung"):
            break
        lo, hi = hi, hi * 2
        if hi > max_nth:
            return lo + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        run, inside = _trial(setup, sweep.path, mid, observe=False)
        sweep.probes += 1
        if progress:
            progress(f"{sweep.path}: bisecting, call {mid}: {'module' if inside else 'loader'}")
        if inside or run.injected is None or run.outcome in ("crashed", "hung"):
            hi = mid
        else:
            lo = mid
    return hi


def sweep_path(setup: _Setup, path: str, max_nth: int,
               progress: Progress | None = None) -> FaultSweep:
    t0 = time.monotonic()
    sweep = FaultSweep(setup.built.module_name, setup.kernel.label, path,
                       setup.command if path == "command" else None)
    start = _first_inside(setup, sweep, max_nth, progress)
    sweep.skipped = start - 1
    if sweep.skipped:
        sweep.notes.append(f"the first {sweep.skipped} calls of the {path} path are the "
                           "kernel's (exec, the module loader), passed over by bisection")
    for nth in range(start, max_nth + 1):
        run, _ = _trial(setup, path, nth, observe=True)
        if run.injected is None:
            sweep.complete = True
            break
        sweep.runs.append(run)
        if progress:
            where = run.site or f"kernel {run.frame.split(' ')[0]}"
            progress(f"{path}: call {nth} ({run.injected}) at {where}: {run.outcome}")
    else:
        sweep.notes.append(f"stopped at --max-nth {max_nth}: allocations remain untested")
    sweep.seconds = time.monotonic() - t0
    return sweep


def sweep_failures(kernel: Kernel, built: BuiltModule, *, paths: Iterable[str] = ("init",),
                   command: str | None = None, options: GuestOptions | None = None,
                   max_nth: int = 2000, timeout: float = 30.0, kmemleak_scan: bool = True,
                   tolerances: Tolerances = DEFAULT_TOLERANCES,
                   progress: Progress | None = None) -> FaultReport:
    """Sweep ``paths`` (init, exit, command) of ``built`` on ``kernel``, which must have fault
    injection (``--config fault-injection``).  ``command`` is one program (exec'd, so only
    its own task is injected) run while the module is loaded; giving it adds the command path.
    ``kmemleak_scan``: on a kernel with kmemleak, scan after every judged run (5 s each)."""
    paths = list(dict.fromkeys([*paths, *(["command"] if command else [])]))
    bad = [p for p in paths if p not in PATHS]
    if bad or not paths:
        raise ConfigError(f"fault paths are {', '.join(PATHS)}, not {', '.join(bad) or 'none'}")
    if "command" in paths and not command:
        raise ConfigError("the command path needs a command (--command 'cat /dev/mydev')")
    if max_nth < 1:
        raise ConfigError(f"max_nth must be at least 1, not {max_nth}")
    require_fault_injection(kernel.kconfig, kernel.label)
    setup = _Setup(kernel, built, options or GuestOptions(), timeout, command, tolerances,
                   kmemleak_scan and kernel.kconfig.get("CONFIG_DEBUG_KMEMLEAK") == "y")
    _calibrate(setup)
    return FaultReport([sweep_path(setup, path, max_nth, progress) for path in paths])


__all__ = [
    "KERNEL",
    "OUTCOMES",
    "PATHS",
    "FaultReport",
    "FaultRun",
    "FaultSite",
    "FaultSweep",
    "sweep_failures",
    "sweep_path",
]
