"""Load a module in a guest and record what each phase did to the kernel.

Every module, generated or brought by the user, follows one design: allocate at load, hold,
free at unload.  Around each phase the runner records the kernel log of that phase (cut at a
marker written to /dev/kmsg), the KTAP documents the module printed, the kernel events (oops,
WARN, slab leak, lockup...) and /proc snapshots before and after.  The phases themselves run in
:mod:`kmodlab.phases`, which the lab grader and the cross-check use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from kmodlab.channel.protocol import shell_quote
from kmodlab.guest import Guest
from kmodlab.modules.build import BuiltModule
from kmodlab.phases import PROC_FILES, PhaseEngine, PhaseRecord, ProcSnapshot

__all__ = ["PROC_FILES", "LoadedModule", "ModuleRun", "Phase", "ProcSnapshot", "run_module"]


@dataclass
class Phase(PhaseRecord):
    """A load or unload phase (:class:`kmodlab.phases.PhaseRecord`) with both /proc snapshots.

    ``name`` is "load" or "unload"; ``command``, ``log``, ``ktap``, ``events``, ``seconds`` and
    ``notes`` as the record has them; ``ok``, ``complaints`` and ``result()`` judge it.
    """

    before: ProcSnapshot
    after: ProcSnapshot


class LoadedModule:
    """A built module on a guest: ``load()`` then ``unload()``, each recording a :class:`Phase`
    through the shared :class:`~kmodlab.phases.PhaseEngine` (``self.engine``)."""

    def __init__(self, guest: Guest, built: BuiltModule, guest_dir: str = "/tmp/kmodlab") -> None:
        self.guest = guest
        self.built = built
        self.guest_path = str(PurePosixPath(guest_dir) / built.ko_path.name)
        self.engine = PhaseEngine(guest)
        self.phases: dict[str, Phase] = {}
        self.loaded = False

    def load(self, args: tuple[str, ...] | list[str] = (), timeout: float = 60.0) -> Phase:
        self.guest.run(f"mkdir -p {shell_quote(str(PurePosixPath(self.guest_path).parent))}",
                       isolate=False, must_succeed=True)
        self.guest.push(self.built.ko_path, self.guest_path)
        all_args = [*self.built.load_args, *args]
        command = " ".join(["insmod", shell_quote(self.guest_path), *map(shell_quote, all_args)])
        phase = self._phase("load", command, timeout)
        self.loaded = phase.command.ok
        return phase

    def unload(self, timeout: float = 60.0) -> Phase:
        phase = self._phase("unload", f"rmmod {shell_quote(self.built.module_name)}", timeout)
        self.loaded = not phase.command.ok
        return phase

    def _phase(self, name: str, command: str, timeout: float) -> Phase:
        # kmodlab's families always print KTAP; a module of your own need not.
        record = self.engine.run(name, command, timeout=timeout, before=True, after=True,
                                 expect_ktap=self.built.family is not None)
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
    def ok(self) -> bool:
        return self.load.ok and self.unload is not None and self.unload.ok


def run_module(guest: Guest, built: BuiltModule, args: tuple[str, ...] | list[str] = (),
               timeout: float = 60.0) -> ModuleRun:
    module = LoadedModule(guest, built)
    load = module.load(args, timeout=timeout)
    unload = module.unload(timeout=timeout) if module.loaded else None
    return ModuleRun(built, load, unload)
