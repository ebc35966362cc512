"""Load a module in a guest and record what each phase did to the kernel.

Every module, generated or brought by the user, follows one design: allocate at load, hold,
free at unload.  Around each phase the runner records the kernel log of that phase (cut at a
marker written to /dev/kmsg), the KTAP documents the module printed, the kernel events (oops,
WARN, slab leak, lockup...) and /proc snapshots before and after.  The phases themselves run in
:mod:`kmodlab.phases`, which the lab grader and the cross-check use too.

After rmmod the runner asks the leak detector (:mod:`kmodlab.leaks`) what the module left
behind, comparing the snapshot before insmod with the one after rmmod; both are taken right
after shrinking every slab cache, so slab counters count live objects.  While the module is
loaded its address ranges are recorded (``/proc/modules``, ``/sys/module/<name>/sections``),
so vmalloc areas whose caller has become a raw address are still attributed to it.  The
verdict is on the unload phase (``Phase.leaks``) and in :attr:`ModuleRun.ok`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from kmodlab import kmemleak
from kmodlab.channel.protocol import shell_quote
from kmodlab.guest import Guest
from kmodlab.leaks import (
    DEFAULT_TOLERANCES,
    Footprint,
    LeakReport,
    Tolerances,
    capture,
    confirm_capture,
    find_leaks,
    needs_confirmation,
    read_footprint,
)
from kmodlab.modules.build import BuiltModule
from kmodlab.phases import PROC_FILES, PhaseEngine, PhaseRecord, ProcSnapshot

if TYPE_CHECKING:
    from kmodlab.faults import FaultReport

__all__ = ["PROC_FILES", "LoadedModule", "ModuleRun", "Phase", "ProcSnapshot", "run_module"]


@dataclass
class Phase(PhaseRecord):
    """A load or unload phase (:class:`kmodlab.phases.PhaseRecord`) with both /proc snapshots.

    ``name`` is "load" or "unload"; ``command``, ``log``, ``ktap``, ``events``, ``seconds`` and
    ``notes`` as the record has them; ``ok``, ``complaints`` and ``result()`` judge it.

    With the leak check on, the load phase's ``before`` and the unload phase's ``after`` are
    taken right after shrinking every slab cache, and a successful unload phase carries
    ``baseline`` (the load phase's ``before``), ``loaded`` (its ``after``), ``footprint`` (the
    module's address ranges while it was loaded), ``leaks`` (the detector's verdict) and, when
    the detector looked twice before reporting a leak, ``confirm`` (the second snapshot).
    """

    before: ProcSnapshot
    after: ProcSnapshot
    baseline: ProcSnapshot | None = None
    loaded: ProcSnapshot | None = None
    footprint: Footprint | None = None
    leaks: LeakReport | None = None
    confirm: ProcSnapshot | None = None

    def find_leaks(self, tolerances: Tolerances = DEFAULT_TOLERANCES) -> LeakReport | None:
        """The leak detector on this unload phase (None without the snapshot before insmod)."""
        if self.baseline is None:
            return None
        return find_leaks(self.baseline, self.after, module=self.module,
                          loaded=self.loaded, footprint=self.footprint, tolerances=tolerances,
                          confirm=[self.confirm] if self.confirm is not None else [])

    @property
    def module(self) -> str:
        """The module the phase's command named (``rmmod 'x'`` / ``insmod '/tmp/x.ko'``)."""
        if self.leaks is not None:
            return self.leaks.module
        word = self.command.command.split()[-1 if self.name == "unload" else 1].strip("'")
        return PurePosixPath(word).name.removesuffix(".ko")


class LoadedModule:
    """A built module on a guest: ``load()`` then ``unload()``, each recording a :class:`Phase`
    through the shared :class:`~kmodlab.phases.PhaseEngine` (``self.engine``).

    ``leak_check`` (on by default): shrink every slab cache before the snapshot before insmod
    and the one after rmmod, record the module's addresses while it is loaded, and judge the
    unload with :func:`kmodlab.leaks.find_leaks` by ``tolerances``.

    ``command_timeout``: seconds each of the harness's own commands may take (copying the
    module, markers, the log read); ``load()``/``unload()`` take the module's own timeout."""

    def __init__(self, guest: Guest, built: BuiltModule, guest_dir: str = "/tmp/kmodlab", *,
                 leak_check: bool = True, tolerances: Tolerances = DEFAULT_TOLERANCES,
                 command_timeout: float = 30.0) -> None:
        self.guest = guest
        self.built = built
        self.guest_path = str(PurePosixPath(guest_dir) / built.ko_path.name)
        self.command_timeout = command_timeout
        self.engine = PhaseEngine(guest, command_timeout=command_timeout)
        self.phases: dict[str, Phase] = {}
        self.loaded = False
        self.leak_check = leak_check
        self.tolerances = tolerances
        self.footprint: Footprint | None = None
        # kmemleak (kernels built with it): cleared before insmod, scanned after rmmod.
        kernel = getattr(guest, "kernel", None)
        self.kmemleak = leak_check and kernel is not None and \
            kernel.kconfig.get("CONFIG_DEBUG_KMEMLEAK") == "y"

    def load(self, args: tuple[str, ...] | list[str] = (), timeout: float = 60.0) -> Phase:
        self.guest.run(f"mkdir -p {shell_quote(str(PurePosixPath(self.guest_path).parent))}",
                       isolate=False, must_succeed=True, timeout=self.command_timeout)
        self.guest.push(self.built.ko_path, self.guest_path,
                        timeout=max(60.0, self.command_timeout))
        all_args = [*self.built.load_args, *args]
        command = " ".join(["insmod", shell_quote(self.guest_path), *map(shell_quote, all_args)])
        if self.kmemleak:
            self.kmemleak = kmemleak.start(self.guest)      # clears the earlier suspects
        phase = self._phase("load", command, timeout, shrink_before=self.leak_check)
        self.loaded = phase.command.ok
        self.footprint = None
        if self.loaded and self.leak_check:
            self.footprint = read_footprint(self.guest, self.built.module_name,
                                            self.built.ko_path)
        return phase

    def unload(self, timeout: float = 60.0) -> Phase:
        phase = self._phase("unload", f"rmmod {shell_quote(self.built.module_name)}", timeout,
                            shrink_after=self.leak_check, since=self._end_of_load())
        self.loaded = not phase.command.ok
        load = self.phases.get("load")
        if self.leak_check and phase.command.ok and load is not None:
            phase.baseline, phase.loaded, phase.footprint = load.before, load.after, self.footprint
            phase.leaks = phase.find_leaks(self.tolerances)
            if phase.leaks is not None and needs_confirmation(phase.leaks):
                phase.confirm = confirm_capture(self.guest)
                phase.leaks = phase.find_leaks(self.tolerances)
            if self.kmemleak and phase.leaks is not None:
                found = kmemleak.scan(self.guest)
                extra = kmemleak.module_leaks(found, self.built.module_name, self.footprint,
                                              source=self._source_of)
                if extra:
                    phase.leaks = replace(phase.leaks, leaks=(*phase.leaks.leaks, *extra))
        return phase

    def sweep_failures(self, paths: tuple[str, ...] | list[str] = ("init",),
                       command: str | None = None, **options: Any) -> FaultReport:
        """Fail each allocation of this module's ``paths`` (init, exit, and ``command`` while
        it is loaded) in turn, each in a pristine guest of this guest's kernel
        (:func:`kmodlab.faults.sweep_failures`, whose keyword options pass through); this
        guest is not touched.  Judge it with
        :func:`kmodlab.assertions.assert_failures_handled`."""
        from kmodlab.faults import sweep_failures

        return sweep_failures(self.guest.kernel, self.built, paths=paths, command=command,
                              options=self.guest.options, **options)

    def _source_of(self, frame: str) -> str:
        """``func+0x22/0x2c [mod] at file.c:9`` when the module's debug info says, else the
        frame as it is."""
        lines = self.built.source_lines(frame)
        return lines[0] if lines else frame

    def _end_of_load(self) -> int | None:
        """Where the load phase's window ended in the console log: the unload phase's window
        starts there, so what the module printed while it sat loaded (a WARN from its work
        item between the phases) is judged, not lost between two windows."""
        load = self.phases.get("load")
        scan = load.scan if load is not None else None
        if scan is None or not scan.ended or scan.position <= 0:
            return None
        return scan.position

    def _phase(self, name: str, command: str, timeout: float, *, shrink_before: bool = False,
               shrink_after: bool = False, since: int | None = None) -> Phase:
        # kmodlab's families always print KTAP; a module of your own need not.
        before = capture(self.guest) if shrink_before else None
        record = self.engine.run(name, command, timeout=timeout, before=before is None,
                                 after=not shrink_after,
                                 expect_ktap=self.built.family is not None, since=since)
        if before is not None:
            record.before = before
        if shrink_after:
            record.after = capture(self.guest)
        phase = Phase.of(record)
        self.phases[name] = phase
        return phase


@dataclass
class ModuleRun:
    """A whole load-observe-unload cycle."""

    built: BuiltModule
    load: Phase
    unload: Phase | None

    @property
    def leaks(self) -> LeakReport | None:
        """The leak detector's verdict on the unload (None when it did not run)."""
        return self.unload.leaks if self.unload is not None else None

    @property
    def ok(self) -> bool:
        """Loaded and unloaded cleanly (KTAP passed, no kernel report, no printk flood) and
        nothing leaked."""
        return (self.load.ok and self.unload is not None and self.unload.ok
                and not any(p.flood for p in (self.load, self.unload) if p is not None)
                and (self.leaks is None or self.leaks.clean))

    def problems(self) -> list[str]:
        """Why the run is not ok, one reason a line (empty when it is)."""
        out: list[str] = []
        for phase in (self.load, self.unload):
            if phase is None:
                out.append("unload not attempted (the module did not load)")
                continue
            if not phase.command.ok:
                out.append(f"{phase.command.command.split()[0]} failed "
                           f"(exit {phase.command.exit_status})")
            elif not phase.ok and not phase.complaints:
                out.append(f"phase {phase.name}: KTAP did not pass")
            kinds = dict.fromkeys(e.kind for e in phase.complaints)
            if kinds:
                out.append(f"phase {phase.name}: the kernel reported {', '.join(kinds)}")
            if phase.flood is not None:       # observe.stream: FLOOD_LINES at FLOOD_RATE
                out.append(f"phase {phase.name}: flood: {phase.flood.describe()}")
        if self.leaks is not None and not self.leaks.clean:
            out.append(self.leaks.summary())
        return out

    @property
    def verdict(self) -> str:
        """``OK``, or ``FAILED: <reasons>`` (``FAILED: leaked: 1000 objects in kmalloc-4k
        (4,000 KiB)``)."""
        problems = self.problems()
        return "OK" if not problems else "FAILED: " + "; ".join(problems)


def run_module(guest: Guest, built: BuiltModule, args: tuple[str, ...] | list[str] = (),
               timeout: float = 60.0, *, leak_check: bool = True,
               tolerances: Tolerances = DEFAULT_TOLERANCES,
               command_timeout: float = 30.0) -> ModuleRun:
    """Load ``built`` and unload it (``timeout``: seconds insmod and rmmod may take each;
    ``command_timeout``: each of the harness's own commands)."""
    module = LoadedModule(guest, built, leak_check=leak_check, tolerances=tolerances,
                          command_timeout=command_timeout)
    load = module.load(args, timeout=timeout)
    unload = module.unload(timeout=timeout) if module.loaded else None
    return ModuleRun(built, load, unload)
