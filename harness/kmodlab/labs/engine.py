"""Run one submission on one kernel: build, then the lab's steps in a pristine guest.

Every run starts a new :class:`~kmodlab.guest.Guest` from the snapshot cache (a restore, well
under a second), so nothing one student's module did can reach the next student.  The run
records what the lab's checks need (:class:`Observations`) and classifies how it ended:

* failures of the grader's own work (booting, pushing the .ko, the first /proc snapshot) are
  **harness errors**: never charged, retried on resume;
* once ``insmod`` starts, a kernel report that kills the guest is a **crash**, a command that
  does not finish in time (or a lockup report: soft or hard lockup, RCU stall, hung task) is a
  **hang**, and a printk flood (a console beyond the lab's limit, which stops the guest, or a
  step that timed out while the kernel was still printing at a flood's rate) fails the run as a
  **flood**, with its rate.

Reads from the guest are bounded (``head -c``, ``dmesg | tail -c``), so a module that prints
without end cannot exhaust the grader's memory or disk.

Each step that runs something in the guest (load, unload, read, write, run) is a phase of the
shared :class:`~kmodlab.phases.PhaseEngine`, as for the runner and the cross-check: marker,
command, the whole kernel log of the phase classified line by line (KTAP wherever it is in the
log, every kernel event; only the text kept is bounded, by the lab's ``dmesg_bytes``);
snapshots shrink the slab caches first when the lab asks for it.  Whether a
kernel report is a lockup (a hang, not a crash) is :mod:`kmodlab.observe.dmesg`'s decision.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from kmodlab.channel.protocol import CommandResult, shell_quote
from kmodlab.errors import CommandTimeout, GuestError, KernelCrash, KmodlabError
from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kernel import Kernel
from kmodlab.labs.errors import EvaluationError, LabError
from kmodlab.labs.lab import Lab
from kmodlab.labs.params import render_template
from kmodlab.labs.schema import Step
from kmodlab.labs.views import OutputView
from kmodlab.leaks import (
    Footprint,
    LeakReport,
    confirm_capture,
    find_leaks,
    needs_confirmation,
    read_footprint,
)
from kmodlab.leaks import capture as leak_capture
from kmodlab.modules.build import BuiltModule
from kmodlab.observe import KernelEvent, KtapDocument, find_events
from kmodlab.observe.dmesg import find_lockup
from kmodlab.phases import PhaseEngine, ProcSnapshot

log = logging.getLogger(__name__)

GUEST_DIR = "/tmp/kmodlab-lab"
MARKER_PREFIX = "kmodlab-lab"
EXCERPT_CHARS = 6000


class HarnessFault(KmodlabError):
    """The grader's own work failed (not the student's): reported as a harness error."""


@dataclass
class Observations:
    """What one run saw.  ``missing`` says why an expected observation is absent."""

    phase_logs: dict[str, str] = field(default_factory=dict)   # step label -> kernel log
    ktap: list[KtapDocument] = field(default_factory=list)
    events: list[KernelEvent] = field(default_factory=list)
    snapshots: dict[str, ProcSnapshot] = field(default_factory=dict)
    outputs: dict[str, OutputView] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    load: CommandResult | None = None
    load_args: tuple[str, ...] = ()      # insmod's k=v arguments, as rendered for this student
    unload: CommandResult | None = None
    loaded: bool = False
    shared: str | None = None   # the shared memory right after insmod, as word runs
    crash: str = ""             # kernel report excerpt when the guest crashed
    crash_kind: str = ""
    hang: str = ""              # what hung
    flood: bool = False
    notes: list[str] = field(default_factory=list)
    console_tail: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    # The leak detector's (kmodlab.leaks): snapshots right after shrinking every slab cache,
    # just before insmod and just after rmmod; the module's addresses while it was loaded; and
    # its verdict with the default tolerances (the no_leaks check judges with the lab's own).
    module: str = ""
    leak_before: ProcSnapshot | None = None
    leak_after: ProcSnapshot | None = None
    footprint: Footprint | None = None
    leaks: LeakReport | None = None
    leak_confirm: ProcSnapshot | None = None   # taken when a leak had to be confirmed
    error_paths: dict[str, Any] = field(default_factory=dict)
    """Check name -> its fault sweep (kmodlab.labs.error_paths.ErrorPathResult)."""
    sources: dict[str, list[str]] = field(default_factory=dict)
    """Report excerpt -> the module's frames in it as ``function at file.c:42`` (file names
    only: the student's build folder and the kernel's headers are not theirs to see)."""

    def source_note(self, excerpt: str) -> str:
        """``\nin your source: kml_init at waste.c:42`` lines for a report, or ''."""
        return "".join(f"\nin your source: {line}" for line in self.sources.get(excerpt, ()))

    @property
    def log_text(self) -> str:
        return "\n".join(self.phase_logs.values())

    @property
    def stopped_early(self) -> str:
        """Why later observations are missing (crash, hang, flood), or ''."""
        if self.flood:
            return "the module flooded the console and the guest was stopped"
        if self.crash:
            return f"the kernel crashed ({self.crash_kind})"
        if self.hang:
            return f"the guest hung ({self.hang})"
        return ""


def hang_detector_command(blocked: int) -> str:
    """Shell that makes the guest's kernel report a task blocked ``blocked`` seconds
    (kernel/hung_task.c: checked every second, hung_task_check_interval_secs) or a CPU stuck
    in the kernel for 2 x watchdog_thresh = 2 x ``blocked`` seconds (kernel/watchdog.c: a
    CPU busy that long without scheduling: softlockup_fn() runs on the CPU's stopper thread,
    so a loop that calls cond_resched() is no lockup; twice as long, since a loop may be
    slow but legitimate under TCG), and panic on either report:
    a panic is what ends a waiting step at once, and the report before it names the hang
    (labs.engine._record_crash, observe.dmesg.find_lockup).  Fails when the kernel has no
    hung-task detector; the soft-lockup knobs are optional."""
    sysctl = "/proc/sys/kernel"
    thresh = min(blocked, 60)               # proc_watchdog_thresh: 0..60
    return (f"echo {blocked} > {sysctl}/hung_task_timeout_secs && "
            f"echo 1 > {sysctl}/hung_task_panic && "
            f"{{ echo 1 > {sysctl}/hung_task_check_interval_secs; "
            f"echo {thresh} > {sysctl}/watchdog_thresh; "
            f"echo 1 > {sysctl}/softlockup_panic; true; }} 2>/dev/null")


class _FloodWatch:
    """Stops the guest when its console log passes ``limit`` bytes (a printk flood)."""

    def __init__(self, guest: Guest, limit: int) -> None:
        self.guest = guest
        self.limit = limit
        self.tripped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kmodlab-flood", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            try:
                size = self.guest.console_log.stat().st_size
            except OSError:
                continue
            if size > self.limit:
                self.tripped = True
                for pid in self.guest.qemu_pids[-1:]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return


BOOT_TIMEOUT = 240.0
"""A cold boot happens once per guest configuration (later starts restore a snapshot); on a
shared, loaded host it can take minutes under TCG, and a timeout here is a harness error."""


def guest_options(lab: Lab) -> GuestOptions:
    g = lab.spec.guest
    return GuestOptions(cpus=g.cpus, memory_mb=g.memory_mb, extra_cmdline=tuple(g.cmdline),
                        boot_timeout=BOOT_TIMEOUT)


class SubmissionRun:
    """The steps of ``lab`` for one built module on one kernel (see the module docstring)."""

    def __init__(self, lab: Lab, kernel: Kernel, built: BuiltModule, env: dict[str, Any],
                 options: GuestOptions | None = None) -> None:
        self.lab = lab
        self.spec = lab.spec
        self.kernel = kernel
        self.built = built
        self.env = env
        self.options = options or guest_options(lab)
        self.obs = Observations(module=lab.spec.module)
        self.guest: Guest | None = None
        self.engine: PhaseEngine | None = None
        self._in_student_phase = False

    # ------------------------------------------------------------------ entry point
    def execute(self) -> Observations:
        t0 = time.monotonic()
        try:
            guest = Guest(self.kernel, self.options)
            guest.start()
        except KmodlabError as exc:
            raise HarnessFault(f"the guest did not start: {_first_lines(str(exc), 12)}") from exc
        except OSError as exc:
            raise HarnessFault(f"the guest did not start: {type(exc).__name__}: {exc}") from exc
        self.guest = guest
        self.engine = PhaseEngine(guest, log_bytes=self.spec.limits.dmesg_bytes,
                                  shrink=bool(self.spec.shrink_slabs), marker_prefix=MARKER_PREFIX)
        self.obs.seconds["guest_start"] = time.monotonic() - t0
        try:
            with _FloodWatch(guest, self.spec.limits.console_bytes) as flood:
                try:
                    self._run_all(guest)
                except KernelCrash as exc:
                    self._record_crash(exc)
                except CommandTimeout as exc:
                    self._record_hang(exc)
                except (GuestError, OSError) as exc:
                    if flood.tripped:
                        self.obs.flood = True
                        self.obs.notes.append(
                            f"the console passed {self.spec.limits.console_bytes >> 20} MiB; "
                            "the guest was stopped" + self._flood_rate())
                    elif self._in_student_phase and not guest.healthy:
                        self._record_death(exc)
                    else:
                        raise HarnessFault(f"{type(exc).__name__}: "
                                           f"{_first_lines(str(exc), 12)}") from exc
                if flood.tripped:
                    self.obs.flood = True
            if self.obs.stopped_early:
                self._salvage_console(guest)
            self.obs.console_tail = _bounded_tail(guest)
        finally:
            guest.stop()
            _truncate_console(guest, self.spec.limits.console_bytes)
        self.obs.seconds["run"] = time.monotonic() - t0
        self._locate_sources()
        return self.obs

    def _locate_sources(self) -> None:
        """Point the crash and every kernel report at the student's source lines."""
        from kmodlab.symbolize import symbolize

        modules = {self.built.module_name: self.built.ko_path}
        for excerpt in [self.obs.crash, *(e.excerpt for e in self.obs.events)]:
            if excerpt and excerpt not in self.obs.sources:
                frames = symbolize(excerpt, modules, self.kernel.arch)
                if frames:
                    self.obs.sources[excerpt] = [f"{f.function} at {Path(f.file).name}:{f.line}"
                                                 for f in frames]

    # ------------------------------------------------------------------ classification
    def _record_crash(self, exc: KernelCrash) -> None:
        excerpt = (exc.excerpt or "")[:EXCERPT_CHARS]
        if not self._in_student_phase:
            raise HarnessFault(f"the kernel crashed before the module was loaded ({exc.kind}):"
                               f"\n{_first_lines(excerpt, 20)}") from exc
        lockup = find_lockup(excerpt)
        if lockup is not None:
            self.obs.hang = f"the kernel detected a {lockup.lockup} in the module: {lockup.title}"
            self.obs.crash = excerpt
            self.obs.crash_kind = "lockup"
            return
        self.obs.crash = excerpt
        self.obs.crash_kind = exc.kind
        self.obs.events.extend(e for e in find_events(excerpt) if e not in self.obs.events)

    def _record_hang(self, exc: CommandTimeout) -> None:
        """A step that did not finish: a **flood** when the kernel was still printing at a
        flood's rate (its rate noted), else a **hang**."""
        what = _first_lines(str(exc), 1)
        if not self._in_student_phase:
            raise HarnessFault(f"a harness command timed out before the module was loaded: "
                               f"{what}") from exc
        scan = self.engine.scan_since_start() if self.engine is not None else None
        if scan is not None and scan.flood is not None:
            self.obs.flood = True
            self.obs.notes.append(f"{what}: the module flooded the kernel log "
                                  f"({scan.flood.describe()})")
            return
        self.obs.hang = what

    def _flood_rate(self) -> str:
        """'' or ' (printk flood: N lines ..., at R lines/s ...)' for the current phase."""
        try:
            scan = self.engine.scan_since_start() if self.engine is not None else None
        except OSError:
            return ""
        if scan is None:
            return ""
        flood = scan.flood
        if flood is None:
            return f" ({scan.lines:,} lines of kernel log in the phase)"
        return f" ({flood.describe()})"

    def _record_death(self, exc: Exception) -> None:
        self.obs.crash = _first_lines(str(exc), 40)[:EXCERPT_CHARS]
        self.obs.crash_kind = "guest died"

    # ------------------------------------------------------------------ steps
    @contextmanager
    def _harness(self, what: str) -> Iterator[None]:
        if self._in_student_phase:
            yield
            return
        try:
            yield
        except (KernelCrash, CommandTimeout):
            raise
        except KmodlabError as exc:
            raise HarnessFault(f"{what}: {_first_lines(str(exc), 8)}") from exc

    def _run_all(self, guest: Guest) -> None:
        guest_path = f"{GUEST_DIR}/{self.built.ko_path.name}"
        with self._harness("copying the module into the guest"):
            guest.run(f"mkdir -p {shell_quote(GUEST_DIR)}", isolate=False, must_succeed=True)
            guest.push(self.built.ko_path, guest_path)
        if self.spec.tools:
            from kmodlab.guest_tools import install_tools

            with self._harness("installing the lab's guest tools"):
                install_tools(guest, self.kernel, tuple(self.spec.tools))
        if self.spec.timeouts.blocked is not None:
            with self._harness("arming the kernel's hang detectors"):
                armed = guest.run(hang_detector_command(self.spec.timeouts.blocked),
                                  isolate=False)
            if not armed.ok:
                self.obs.notes.append("this kernel has no hung-task detector "
                                      "(CONFIG_DETECT_HUNG_TASK): a blocked step ends at its "
                                      "timeout")
        with self._harness("reading /proc before loading"):
            self.obs.leak_before = self._leak_snapshot(guest)
            self.obs.snapshots["before"] = self._lab_snapshot(guest, self.obs.leak_before)
        unload_seen = False
        for index, step in enumerate(self.spec.steps):
            kind = step.kind
            if kind == "build":
                continue
            if kind == "load":
                self._in_student_phase = True
                self._load(guest, step, guest_path)
                if not self.obs.loaded:
                    self._skip_rest(index, "the module did not load")
                    return
                continue
            if kind == "unload":
                unload_seen = True
                self._unload(guest, step)
                continue
            if kind == "observe":
                name = step.observe.as_  # type: ignore[union-attr]
                self.obs.snapshots[name] = self._snapshot(guest)
                continue
            self._io_step(guest, index, step)
        if not unload_seen:
            self.obs.missing["after"] = "the lab does not unload the module"

    def _skip_rest(self, index: int, why: str) -> None:
        for step in self.spec.steps[index + 1:]:
            spec = step.spec
            name = getattr(spec, "as_", None)
            if name:
                self.obs.missing[name] = why
        self.obs.missing.setdefault("loaded", why)
        self.obs.missing.setdefault("after", why)

    def _render(self, text: str) -> str:
        try:
            return render_template(text, self.env)
        except EvaluationError as exc:
            raise LabError(f"{self.lab.lab_file}: cannot fill {text!r}: {exc}") from None

    def _timeout(self, value: float | None, default: float) -> float:
        return float(value if value is not None else default)

    def _salvage_console(self, guest: Guest) -> None:
        """After a crash or hang dmesg cannot be read: take the phase's kernel messages (KTAP
        lines printed before the end, the report itself) from the console log instead."""
        start = self.engine.current if self.engine is not None else None
        if start is None or start.name in self.obs.phase_logs:
            return
        scan = self.engine.scan_since_start()  # type: ignore[union-attr]
        if scan is None:
            return
        self.obs.phase_logs[start.name] = scan.text
        self.obs.ktap.extend(scan.ktap)
        self.obs.events.extend(e for e in scan.events
                               if e.kind not in {x.kind for x in self.obs.events})

    def _phase(self, guest: Guest, label: str, command: str, timeout: float) -> CommandResult:
        """Run one student-facing command as a phase of the engine: its kernel log (cut at the
        phase's marker, at most ``dmesg_bytes``), KTAP and kernel events join the observations."""
        assert self.engine is not None and self.engine.guest is guest
        try:
            phase = self.engine.run(label, command, timeout=timeout)
        finally:
            start = self.engine.current
            if start is not None and start.name == label and start.seconds is not None:
                self.obs.seconds[label] = start.seconds
        self.obs.notes.extend(phase.notes)
        self.obs.phase_logs[label] = phase.log
        self.obs.ktap.extend(phase.ktap)
        self.obs.events.extend(phase.events)
        lockup = next((e for e in phase.events if e.lockup), None)
        if lockup is not None and not self.obs.hang:
            # The kernel went on, but a watchdog saw the module stall it: a hang, not a pass.
            self.obs.hang = f"the kernel detected a {lockup.lockup} in the module: {lockup.title}"
        return phase.command

    def _load(self, guest: Guest, step: Step, guest_path: str) -> None:
        spec = step.load
        assert spec is not None
        args = [f"{k}={self._render(v)}" for k, v in spec.args.items()]
        self.obs.load_args = tuple(args)
        command = " ".join(["insmod", shell_quote(guest_path), *map(shell_quote, args)])
        result = self._phase(guest, "load", command,
                             self._timeout(spec.timeout, self.spec.timeouts.load))
        self.obs.load = result
        self.obs.loaded = result.ok
        if not result.ok:
            self.obs.notes.append(f"insmod failed (exit {result.exit_status}): "
                                  f"{_clip(result.output.strip(), 400)}")
            return
        self.obs.snapshots["loaded"] = self._snapshot(guest)
        self.obs.shared = guest.shared_memory_runs()
        self.obs.footprint = read_footprint(guest, self.spec.module, self.built.ko_path)

    def _unload(self, guest: Guest, step: Step) -> None:
        spec = step.unload
        assert spec is not None
        result = self._phase(guest, "unload", f"rmmod {shell_quote(self.spec.module)}",
                             self._timeout(spec.timeout, self.spec.timeouts.unload))
        self.obs.unload = result
        if not result.ok:
            self.obs.notes.append(f"rmmod failed (exit {result.exit_status}): "
                                  f"{_clip(result.output.strip(), 400)}")
        else:
            self.obs.loaded = False
        if result.ok:
            self._check_leaks(guest)
            self.obs.snapshots["after"] = self._lab_snapshot(guest, self.obs.leak_after)
        else:
            self.obs.snapshots["after"] = self._snapshot(guest)

    def _leak_snapshot(self, guest: Guest) -> ProcSnapshot:
        """The leak detector's snapshot (kmodlab.leaks.capture: every cache shrunk first, and
        the per-CPU page lists), besides the lab's own."""
        return leak_capture(guest)

    def _lab_snapshot(self, guest: Guest, leak: ProcSnapshot | None) -> ProcSnapshot:
        """The lab's snapshot: the leak detector's, taken a moment ago, when the lab shrinks
        every cache anyway (the default: the same shrink and the same /proc files, so taking
        both would only cost a second round, ~80 ms on x86_64 and ~240 ms on arm64 under
        TCG); its own otherwise."""
        if leak is not None and self.spec.shrink_slabs is True:
            return leak
        return self._snapshot(guest)

    def _check_leaks(self, guest: Guest) -> None:
        """What the module left behind after rmmod (kmodlab.leaks); noted when not clean."""
        self.obs.leak_after = self._leak_snapshot(guest)
        if self.obs.leak_before is None:
            return

        def report() -> LeakReport:
            assert self.obs.leak_before is not None and self.obs.leak_after is not None
            confirm = [self.obs.leak_confirm] if self.obs.leak_confirm is not None else []
            return find_leaks(self.obs.leak_before, self.obs.leak_after,
                              module=self.spec.module, loaded=self.obs.snapshots.get("loaded"),
                              footprint=self.obs.footprint, confirm=confirm)

        self.obs.leaks = report()
        if needs_confirmation(self.obs.leaks):
            self.obs.leak_confirm = confirm_capture(guest)
            self.obs.leaks = report()
        if not self.obs.leaks.clean:
            self.obs.notes.append(f"leak check: {self.obs.leaks.summary()}")

    def _io_step(self, guest: Guest, index: int, step: Step) -> None:
        spec = step.spec
        timeout = self._timeout(spec.timeout, self.spec.timeouts.step)
        limit = min(getattr(spec, "max_bytes", None) or self.spec.limits.output_bytes,
                    self.spec.limits.output_bytes)
        if step.kind == "write":
            path, data = self._render(spec.path), self._render(spec.data)
            label = f"write{index}"
            result = self._phase(guest, label,
                                 f"printf '%s' {shell_quote(data)} > {shell_quote(path)}", timeout)
            if not result.ok and spec.expect_ok:
                self.obs.notes.append(f"writing {data!r} to {path} failed: "
                                      f"{_clip(result.stderr.strip(), 300)}")
            return
        name = spec.as_ or f"run{index}"
        if step.kind == "read":
            path = self._render(spec.path)
            command = f"head -c {limit + 1} {shell_quote(path)}"
        else:
            out = shell_quote(f"{GUEST_DIR}/.run-out")
            command = (f"( {self._render(spec.command)} ) > {out} 2>&1; rc=$?; "
                       f"head -c {limit + 1} {out}; rm -f {out}; exit $rc")
        result = self._phase(guest, name, command, timeout)
        raw = result.stdout_bytes
        truncated = len(raw) > limit
        text = raw[:limit].decode("utf-8", errors="replace")
        if step.kind == "read" and not result.ok:
            text = text or result.stderr.strip()[:limit]
        self.obs.outputs[name] = OutputView(f"{step.kind}.{name}", text, result.exit_status,
                                            truncated)

    def _snapshot(self, guest: Guest) -> ProcSnapshot:
        """/proc now (every slab cache shrunk first when the lab sets ``shrink_slabs``)."""
        assert self.engine is not None and self.engine.guest is guest
        return self.engine.snapshot()


def _first_lines(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[:n])


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _bounded_tail(guest: Guest, limit: int = 16 << 10) -> str:
    try:
        with open(guest.console_log, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - limit))
            return fh.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _truncate_console(guest: Guest, limit: int) -> None:
    """Keep a flooded console log from filling the run directory (its tail is kept)."""
    try:
        path: Path = guest.console_log
        if path.stat().st_size > limit // 4:
            tail = _bounded_tail(guest, 64 << 10)
            path.write_text("[kmodlab: console log truncated by the lab grader]\n" + tail)
    except OSError:
        pass
