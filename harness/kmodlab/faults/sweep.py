"""Fail every allocation a module makes, one at a time, and judge how it copes.

For one *path* (the module's init, its exit, or a user command that exercises it), one
allocator at a time (the slab allocator, then the page allocator: counting both in one sequence
makes it timing-dependent, see :mod:`kmodlab.faults.injection`) and N = 1, 2, ...: a pristine
guest (a snapshot restore), the task running that path made to fail its N-th allocation, the
outcome observed; the sweep ends at the first N that injects nothing (the path made fewer than
N allocations).

The task's first calls are the kernel's (exec, the module loader); the module's own come
later.  Where the failing call's stack says which side of that line it is on -- the module
loader's ``do_init_module()`` (kernel/module/main.c, noinline) or the module's own frames for
init, ``delete_module()`` for exit -- the first N inside the module is found by bisection, so
the loader's few dozen calls cost a handful of runs.  A call whose stack is unknown (an
allocation with __GFP_NOWARN prints none; the loader's module_alloc() is one) cannot be placed,
so after the bisection the sweep walks back over every such call just before its start: a
module's own unchecked __GFP_NOWARN allocation is still tried.  A user command gets a linear
sweep.

Every judged run compares with one baseline: /proc as the pristine guest shows it with the
module copied in and fault injection armed, taken once (every restore starts from the same
state).  Runs whose failing call is the kernel's own (no module frame) are judged only for
crashes and hangs: their leaks and warnings are the kernel's business.

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath

from kmodlab import kmemleak
from kmodlab.channel.protocol import shell_quote
from kmodlab.errors import CommandTimeout, ConfigError, KernelCrash, KmodlabError
from kmodlab.faults.injection import (
    ATTRIBUTES,
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
from kmodlab.phases import PhaseEngine, ProcSnapshot

PATHS = ("init", "exit", "command")
OUTCOMES = ("crashed", "hung", "leaked", "reported", "handled")
"""A site's outcomes, worst first; ``handled`` is the only good one."""
KERNEL = "kernel"
"""The outcome of a run whose failing call has no frame of the module (the loader's own)."""
GUEST_DIR = "/tmp/kmodlab"

# Where the loader hands over to the module (kernel/module/main.c: do_init_module() is
# noinline; delete_module is the syscall that calls mod->exit()).
_INSIDE = {"init": re.compile(r"\bdo_init_module\b"), "exit": re.compile(r"sys_delete_module")}
# Calls that come before that: the loader itself (load_module() before do_init_module()), and
# what insmod/rmmod do before the syscall (open, read, map the .ko; exec; page faults).
# Anything else without the module's frames comes after (exit, signals to the parent).
_BEFORE = re.compile(r"\b(?:load_module|kernel_read_file|do_sys_openat2|\w*sys_open\w*|"
                     r"\w*sys_read|\w*sys_pread64|vm_mmap_pgoff|\w*sys_mmap|\w*sys_brk|"
                     r"\w*sys_\w*fstat\w*|\w*execve\w*|bprm_\w+|exc_page_fault|"
                     r"do_page_fault|do_mem_abort|handle_mm_fault)\+")

Progress = Callable[[str], None]


class ModuleNotClean(KmodlabError):
    """The module fails without any injected failure (does not load, leaks, cannot be
    unloaded): the module's own problem, so a grader charges it, unlike a harness failure."""


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
    attribute: str = "failslab"     # which allocator fails: failslab or fail_page_alloc
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
                "attribute": self.attribute, "command": self.command, "ok": self.ok, "complete": self.complete,
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
    attribute: str = "failslab"
    footprint: Footprint | None = None
    baseline: ProcSnapshot | None = None

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
    guest.run(f"mkdir -p {GUEST_DIR} && {arm_command(setup.attribute)}", isolate=False,
              must_succeed=True)
    guest.push(setup.built.ko_path, setup.guest_path)


def _module_frame(setup: _Setup, text: str) -> tuple[str | None, str]:
    """(``file.c:42``, ``func+0x1d/0x60 [mod] at .../file.c:42``) of the innermost frame of
    the module in a report, or (None, the report's first frame)."""
    lines = setup.built.source_lines(text)
    if lines:
        frame = lines[0]
        # "f+0x1/0x2 [m] at /src/m.c:52 (inlined into g at /src/m.c:88) (in h)": the first
        # location is the innermost (the line that called the allocator)
        at = re.split(r" \((?:in|inlined into) ", frame)[0].rsplit(" at ", 1)[-1]
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


def _trial(setup: _Setup, path: str, nth: int, *, observe: bool) -> tuple[FaultRun, str]:
    """One pristine guest, the ``nth`` allocation of ``path`` failed.  Returns the run and
    where the failing call is relative to the module's code, for the bisection: ``before``
    (the loader, insmod's own), ``inside`` (the module or its init/exit call), ``after``
    (nothing left to fail, a crash or hang, or the exiting task), ``unknown`` (no stack).
    ``observe``: judge the outcome (leak checks); otherwise only where it failed."""
    t0 = time.monotonic()
    with Guest(setup.kernel, setup.options) as guest:
        _prepare(guest, setup)
        engine = PhaseEngine(guest)
        memleak = observe and setup.use_kmemleak and kmemleak.start(guest)
        offset = _console_size(guest)
        returned: int | None = None
        events: list[KernelEvent] = []
        loaded = False
        try:
            if path != "init":
                load = engine.run("load", setup.insmod, timeout=setup.timeout)
                if not load.command.ok:
                    raise ModuleNotClean(f"{setup.built.module_name} no longer loads without an "
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
            # the site is where the injected failure was; the crash says where it hurt
            failure = _failure_from_console(guest, offset)
            site, frame = _module_frame(setup, failure.text) if failure else (None, "")
            if site is None:
                site, frame = _module_frame(setup, crash.excerpt)
            return FaultRun(path, nth, failure.attribute if failure else "unknown", site, frame,
                            "crashed", _crash_detail(setup, crash), None,
                            time.monotonic() - t0), "inside"
        except CommandTimeout as exc:
            failure = _failure_from_console(guest, offset)
            site, frame = _module_frame(setup, failure.text) if failure else (None, "")
            return FaultRun(path, nth, failure.attribute if failure else "unknown", site, frame,
                            "hung", str(exc).splitlines()[0], None,
                            time.monotonic() - t0), "inside"
        if injected is None:
            return FaultRun(path, nth, None, None, "", "handled", "nothing left to fail",
                            returned, time.monotonic() - t0), "after"
        site, frame = _module_frame(setup, failure.text) if failure else (None, "")
        if failure is None:
            where = "unknown"
        elif site is not None or (path in _INSIDE and failure.mentions(_INSIDE[path])):
            where = "inside"
        else:
            where = "before" if failure.mentions(_BEFORE) else "after"
        if not observe or (site is None and failure is not None):
            # the kernel's own call: only a crash or a hang (above) would be news
            return FaultRun(path, nth, injected, site, frame, KERNEL, "", returned,
                            time.monotonic() - t0), where
        # No stack: on a kmemleak kernel most such calls are kmemleak's own bookkeeping
        # (mm/kmemleak.c:gfp_kmemleak_mask() adds __GFP_NOWARN), which falls back to its
        # static pool; the /proc leak check judges them, kmemleak's 5 s scan would not pay.
        try:
            outcome, detail = _judge_after(guest, engine, setup, events, loaded,
                                           memleak and failure is not None, frame)
        except KernelCrash as crash:    # e.g. an exit that trusts a pointer init never got
            outcome, detail = "crashed", ("after the failure, while unloading and checking: "
                                          + _crash_detail(setup, crash))
        except CommandTimeout as exc:
            outcome, detail = "hung", ("after the failure, while unloading and checking: "
                                       + str(exc).splitlines()[0])
        if failure is None:
            detail = ("the failing call printed no stack (__GFP_NOWARN), so its site is "
                      "unknown" + (f"; {detail}" if detail else ""))
            site, frame = "(unknown: __GFP_NOWARN)", ""
        return FaultRun(path, nth, injected, site, frame, outcome, detail, returned,
                        time.monotonic() - t0), where


def _crash_detail(setup: _Setup, crash: KernelCrash) -> str:
    lines = setup.built.source_lines(crash.excerpt)
    first = str(crash).splitlines()[0] if str(crash) else crash.kind
    return first + (f"; in your source: {lines[0]}" if lines else "")


_OFFSET = re.compile(r"[\w.$]+\+0x[0-9a-f]+")
# Frames that hand the object they allocate to their caller: the slab, page, vmalloc and
# per-CPU allocators, their hooks and the dup/printf helpers.  An object allocated with only
# such frames between it and the module is the module's to free.
_RETURNS_OBJECT = re.compile(r"alloc|^(?:__)?(?:kstrn?dup|kmemdup|kv?asprintf|kmemleak_|kasan_|"
                             r"slab_|new_slab|should_fail|fail_dump)")


def inside_failed_call(objects: list[kmemleak.Unreferenced], failed_frame: str,
                       setup: _Setup) -> tuple[list[kmemleak.Unreferenced],
                                               list[kmemleak.Unreferenced]]:
    """Split kmemleak's suspects into the module's and those the *kernel* leaked inside the
    very call of the module that was made to fail: allocated at that call's return address
    by a kernel function that keeps the object to itself (not an allocator handing it to the
    module).  A failed kmem_cache_create() is one: mm/slub.c:sysfs_slab_add() returns after
    a failed kobject_init_and_add() without kobject_put(), leaking the kobject's name (6.1
    and 6.12), and no module can free that.  An object the module got back from an allocator
    at the same call site (an earlier turn of a loop) stays the module's."""
    m = _OFFSET.search(failed_frame)
    if m is None:
        return objects, []
    failed = m.group(0)
    module = setup.built.module_name
    mine, kernels = [], []
    for obj in objects:
        named = kmemleak.name_frames(obj, setup.footprint)
        first = next((i for i, f in enumerate(named.frames) if f.endswith(f" [{module}]")), None)
        if first is None:
            mine.append(obj)
            continue
        at = _OFFSET.search(named.frames[first])
        callers = [f.split("+", 1)[0] for f in named.frames[:first]]
        if at is not None and at.group(0) == failed and \
                any(not _RETURNS_OBJECT.search(c) for c in callers):
            kernels.append(obj)
        else:
            mine.append(obj)
    return mine, kernels


def _judge_after(guest: Guest, engine: PhaseEngine, setup: _Setup, events: list[KernelEvent],
                 loaded: bool, memleak: bool, failed_frame: str = "") -> tuple[str, str]:
    """Unload what is still loaded, then leaks and the kernel's complaints.  ``failed_frame``:
    the module's frame of the call that was made to fail (see :func:`inside_failed_call`)."""
    if loaded:
        unload = engine.run("unload", setup.rmmod, timeout=setup.timeout)
        events = [*events, *unload.events]
        if not unload.command.ok:
            return "leaked", ("the module could not be unloaded afterwards: "
                              f"{unload.command.output.strip()[-200:]}")
    after = capture(guest)
    assert setup.baseline is not None, "calibrate first"
    report = find_leaks(setup.baseline, after, module=setup.built.module_name,
                        footprint=setup.footprint, tolerances=setup.tolerances)
    leaks = list(report.leaks)
    kernels_own: list[kmemleak.Unreferenced] = []
    if memleak:
        found = kmemleak.scan(guest)
        found, kernels_own = inside_failed_call(found, failed_frame, setup)
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
    if kernels_own:
        obj = kernels_own[0]
        return "handled", (f"the kernel leaked {len(kernels_own)} object(s) inside the failed "
                           f"call ({obj.size} bytes from {obj.frames[0] if obj.frames else '?'}"
                           "): its own error path, not the module's")
    return "handled", ""


def _calibrate(setup: _Setup) -> None:
    """A clean load and unload with nothing injected: the module must pass it (otherwise
    every site would inherit its problem), and its addresses are recorded -- a pristine guest
    loads it at the same place every time, so kmemleak's bare addresses of a module that
    failed to load still name its functions."""
    with Guest(setup.kernel, setup.options) as guest:
        _prepare(guest, setup)
        engine = PhaseEngine(guest)
        setup.baseline = capture(guest)
        load = engine.run("load", setup.insmod, timeout=setup.timeout)
        if not load.command.ok:
            raise ModuleNotClean(f"{setup.built.module_name} does not load even without an "
                               f"injected failure (exit {load.command.exit_status}): "
                               f"{load.command.output.strip()[-300:]}; `kmodlab run` shows why")
        setup.footprint = read_footprint(guest, setup.built.module_name, setup.built.ko_path)
        outcome, detail = _judge_after(guest, engine, setup, list(load.events), True, False)
        if outcome != "handled":
            raise ModuleNotClean(f"{setup.built.module_name} is not clean even without an injected "
                               f"failure ({outcome}: {detail}); fix that first (`kmodlab run` "
                               "shows it)")


def locate_start(where: Callable[[int], str], max_nth: int) -> int:
    """The smallest N that may be the module's: past every call known to come ``before`` it.

    ``where(n)`` classifies call n as ``before``, ``inside``, ``after`` or ``unknown``
    (:func:`_trial`).  Calls known to be before form a prefix, so a bisection on the known
    ones finds the boundary; a call with no stack (``unknown``) says nothing, so where one is
    probed the nearest known call above it decides, and the unknown calls between the last
    known-before call and the boundary are all swept.  The start can be early, never late."""
    lo, hi = 0, 1                   # every call <= lo is before; hi is not known-before
    while True:                     # double until a call is known not to be before
        known = hi
        while known <= max_nth and where(known) == "unknown":
            known += 1
        if known > max_nth:
            return lo + 1
        if where(known) != "before":
            break                   # [hi, known) unknown: hi stays their first
        lo, hi = known, known * 2
        if hi > max_nth:
            return lo + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probe = mid
        while probe < hi and where(probe) == "unknown":
            probe += 1
        if probe < hi and where(probe) == "before":
            lo = probe
        else:
            hi = mid            # [mid, hi) unknown or past: the sweep takes them all
    start = hi
    while start - 1 > lo and where(start - 1) == "unknown":
        start -= 1
    return start


def _first_inside(setup: _Setup, sweep: FaultSweep, max_nth: int,
                  progress: Progress | None) -> int:
    """:func:`locate_start` with real trials (each call's class cached)."""
    if sweep.path not in _INSIDE:
        return 1
    seen: dict[int, str] = {}

    def where(nth: int) -> str:
        if nth not in seen:
            _, seen[nth] = _trial(setup, sweep.path, nth, observe=False)
            sweep.probes += 1
            if progress:
                progress(f"{sweep.path} ({setup.attribute}): locating the module's first "
                         f"call: call {nth}: {seen[nth]}")
        return seen[nth]

    return locate_start(where, max_nth)


def sweep_path(setup: _Setup, path: str, max_nth: int,
               progress: Progress | None = None) -> FaultSweep:
    """Every call of ``path`` that ``setup.attribute`` counts, failed in turn."""
    t0 = time.monotonic()
    sweep = FaultSweep(setup.built.module_name, setup.kernel.label, path, setup.attribute,
                       setup.command if path == "command" else None)
    start = _first_inside(setup, sweep, max_nth, progress)
    sweep.skipped = start - 1
    if sweep.skipped:
        sweep.notes.append(f"the first {sweep.skipped} calls of the {path} path are the "
                           "kernel's (exec, the module loader), passed over by bisection")
    for nth in range(start, max_nth + 1):
        run, _where = _trial(setup, path, nth, observe=True)
        if run.injected is None:
            sweep.complete = True
            break
        sweep.runs.append(run)
        if progress:
            where = run.site or f"kernel {run.frame.split(' ')[0]}"
            progress(f"{path} ({setup.attribute}): call {nth} at {where}: {run.outcome}")
    else:
        sweep.notes.append(f"stopped at --max-nth {max_nth}: allocations remain untested")
    sweep.seconds = time.monotonic() - t0
    return sweep


_SHELL_LISTS = {"|", "||", "&&", ";", "&", "(", ")", "\n"}


def check_command(command: str) -> None:
    """The command path's command must be one program: it is exec'd in the task whose
    allocations fail, and a pipeline or a list would run its parts in children, which fork
    leaves uninjected (kernel/fork.c clears fail_nth), so the sweep would test nothing."""
    import shlex

    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ConfigError(f"cannot parse the command {command!r}: {exc}") from None
    lists = sorted({t for t in tokens if t in _SHELL_LISTS} | ({"newline"} if "\n" in command
                                                               else set()))
    if not tokens or lists:
        raise ConfigError(f"--command must be one program with its arguments (it is exec'd in "
                          f"the task whose allocations fail; children are not injected), not "
                          f"{command!r}" + (f": it has {' '.join(lists)}" if lists else ""))


def check_request(paths: Iterable[str], command: str | None, max_nth: int) -> list[str]:
    """The paths to sweep (``command`` adds its own), or one clear error: before any kernel
    is built or guest started."""
    paths = list(dict.fromkeys([*paths, *(["command"] if command else [])]))
    bad = [p for p in paths if p not in PATHS]
    if bad or not paths:
        raise ConfigError(f"fault paths are {', '.join(PATHS)}, not {', '.join(bad) or 'none'}")
    if "command" in paths and not command:
        raise ConfigError("the command path needs a command (--command 'cat /dev/mydev')")
    if command is not None:
        check_command(command)
    if max_nth < 1:
        raise ConfigError(f"max_nth must be at least 1, not {max_nth}")
    return paths


def sweep_options(kernel: Kernel, options: GuestOptions, skip_idle: bool) -> GuestOptions:
    """``skip_idle`` under TCG: sweep guests skip their idle time
    (GuestOptions.idle_skips_time).  Each judged run with kmemleak waits its 5-second minimum
    age in guest time, which then costs a fraction of a second; busy code runs ~30% slower
    under the instruction counter, so a sweep without kmemleak scans goes without it.  KVM has
    no instruction counter; its guests run as they are."""
    from kmodlab.qemu.accel import choose_accel
    from kmodlab.registry import arch_profile

    accel = choose_accel(arch_profile(kernel.arch), options.accel)
    return replace(options, idle_skips_time=skip_idle and accel.accel == "tcg")


def sweep_failures(kernel: Kernel, built: BuiltModule, *, paths: Iterable[str] = ("init",),
                   command: str | None = None, options: GuestOptions | None = None,
                   max_nth: int = 2000, timeout: float = 30.0, kmemleak_scan: bool = True,
                   tolerances: Tolerances = DEFAULT_TOLERANCES,
                   progress: Progress | None = None,
                   skip_idle: bool | None = None) -> FaultReport:
    """Sweep ``paths`` (init, exit, command) of ``built`` on ``kernel``, which must have fault
    injection (``--config fault-injection``).  ``command`` is one program (exec'd, so only
    its own task is injected) run while the module is loaded; giving it adds the command path.
    ``kmemleak_scan``: on a kernel with kmemleak, scan after every judged run (a 5 s wait in
    guest time each).  ``skip_idle``: skip the guests' idle time (:func:`sweep_options`);
    default: when kmemleak scans."""
    paths = check_request(paths, command, max_nth)
    require_fault_injection(kernel.kconfig, kernel.label)
    use_kmemleak = kmemleak_scan and kernel.kconfig.get("CONFIG_DEBUG_KMEMLEAK") == "y"
    skip = use_kmemleak if skip_idle is None else skip_idle
    setup = _Setup(kernel, built, sweep_options(kernel, options or GuestOptions(), skip),
                   timeout, command, tolerances, use_kmemleak)
    _calibrate(setup)
    sweeps = []
    for path in paths:
        for attribute in ATTRIBUTES:       # one allocator at a time (see injection._OFF)
            setup.attribute = attribute
            sweeps.append(sweep_path(setup, path, max_nth, progress))
    return FaultReport(sweeps)


__all__ = [
    "KERNEL",
    "OUTCOMES",
    "PATHS",
    "FaultReport",
    "FaultRun",
    "FaultSite",
    "FaultSweep",
    "ModuleNotClean",
    "check_command",
    "check_request",
    "locate_start",
    "sweep_failures",
    "sweep_path",
]
