"""Load a module in a guest and record what each phase did to the kernel.

Every module, generated or brought by the user, follows one design: allocate at load, hold,
free at unload.  Around each phase the runner records the kernel log of that phase (cut at a
marker written to /dev/kmsg), the KTAP documents the module printed, the kernel events (oops,
WARN, slab leak...) and /proc snapshots before and after.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from kmodlab.channel.protocol import CommandResult, shell_quote
from kmodlab.errors import GuestError
from kmodlab.guest import Guest
from kmodlab.modules.build import BuiltModule
from kmodlab.observe import (
    BuddyInfo,
    KernelEvent,
    KtapDocument,
    MemInfo,
    SlabInfo,
    VmallocInfo,
    find_events,
    parse_buddyinfo,
    parse_ktap,
    parse_meminfo,
    parse_slabinfo,
    parse_vmallocinfo,
)

PROC_FILES = ("/proc/slabinfo", "/proc/buddyinfo", "/proc/vmallocinfo", "/proc/meminfo")
_SEPARATOR = "--kmodlab-proc-separator--"


@dataclass(frozen=True)
class ProcSnapshot:
    """The allocator-facing /proc files, read in one round trip and parsed."""

    slabinfo: SlabInfo
    buddyinfo: BuddyInfo
    vmallocinfo: VmallocInfo
    meminfo: MemInfo
    raw: dict[str, str] = field(repr=False, default_factory=dict)

    @classmethod
    def capture(cls, guest: Guest) -> ProcSnapshot:
        command = f"; echo {_SEPARATOR}; ".join(f"cat {path}" for path in PROC_FILES)
        result = guest.run(command, isolate=False, check=True)
        parts = result.stdout.split(_SEPARATOR + "\n")
        if len(parts) != len(PROC_FILES):
            raise GuestError(f"reading {', '.join(PROC_FILES)} returned {len(parts)} parts")
        raw = dict(zip(PROC_FILES, parts, strict=True))
        return cls(parse_slabinfo(raw["/proc/slabinfo"]), parse_buddyinfo(raw["/proc/buddyinfo"]),
                   parse_vmallocinfo(raw["/proc/vmallocinfo"]), parse_meminfo(raw["/proc/meminfo"]),
                   raw)


@dataclass
class Phase:
    name: str                       # "load" or "unload"
    command: CommandResult
    log: str                        # the kernel log lines of this phase
    ktap: list[KtapDocument]
    events: list[KernelEvent]
    before: ProcSnapshot
    after: ProcSnapshot
    seconds: float

    @property
    def complaints(self) -> list[KernelEvent]:
        """Kernel reports of this phase other than the expected out-of-tree taint notices."""
        return [e for e in self.events if e.is_complaint]

    @property
    def ok(self) -> bool:
        """The command succeeded, every KTAP document passed, and no crash/WARN/leak report."""
        return self.command.ok and all(doc.ok for doc in self.ktap) and not self.complaints

    def result(self, name: str):
        """The KTAP result named ``name`` in this phase's documents."""
        for doc in self.ktap:
            for _path, res in doc.walk():
                if res.name == name:
                    return res
        raise KeyError(f"no KTAP test point '{name}' in phase {self.name}")


class LoadedModule:
    """A built module on a guest: ``load()`` then ``unload()``, each recording a :class:`Phase`."""

    def __init__(self, guest: Guest, built: BuiltModule, guest_dir: str = "/tmp/kmodlab") -> None:
        self.guest = guest
        self.built = built
        self.guest_path = str(PurePosixPath(guest_dir) / built.ko_path.name)
        self.phases: dict[str, Phase] = {}
        self.loaded = False

    def load(self, args: tuple[str, ...] | list[str] = (), timeout: float = 60.0) -> Phase:
        self.guest.run(f"mkdir -p {shell_quote(str(PurePosixPath(self.guest_path).parent))}",
                       isolate=False, check=True)
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
        marker = f"kmodlab-phase-{name}-{secrets.token_hex(6)}"
        before = ProcSnapshot.capture(self.guest)
        console_offset = self.guest.console_log.stat().st_size
        self.guest.run(f"echo {marker} > /dev/kmsg", isolate=False, check=True)
        start = time.monotonic()
        result = self.guest.run(command, timeout=timeout)
        seconds = time.monotonic() - start
        log = self._log_since(marker, console_offset)
        after = ProcSnapshot.capture(self.guest)
        phase = Phase(name, result, log, parse_ktap(log), find_events(log), before, after, seconds)
        self.phases[name] = phase
        return phase

    def _log_since(self, marker: str, console_offset: int, attempts: int = 5) -> str:
        """The kernel log lines after ``marker``.

        Cut in the guest, so only this phase's lines travel (the ring buffer holds 100+ KB after
        a few runs).  A marker not yet visible is read again; if it never shows, the console
        log on the host (which receives every kernel line) is the fallback.
        """
        command = f"dmesg | sed -n '/{marker}/,$p'"
        for _ in range(attempts):
            text = self.guest.run(command, isolate=False, check=True).stdout
            if marker in text:
                return text.split("\n", 1)[1] if "\n" in text else ""
            time.sleep(0.05)
        with open(self.guest.console_log, "rb") as fh:
            fh.seek(console_offset)
            text = fh.read(4 * 1024 * 1024).decode("utf-8", errors="replace")
        idx = text.find(marker)
        if idx < 0:
            raise GuestError(f"the kernel log lost the phase marker {marker}: neither dmesg nor "
                             f"the console log {self.guest.console_log} shows it")
        return text[text.index("\n", idx) + 1:] if "\n" in text[idx:] else ""


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
