"""One module phase in a guest, the same for the runner, the lab grader and the cross-check.

A *phase* is one command run against a module (``insmod``, ``rmmod``, a lab's read/write/run
step) together with what it did to the kernel.  :class:`PhaseEngine` runs it in this order:

1. optionally shrinks slab caches (every cache, or named ones) and takes a /proc snapshot
   (:class:`ProcSnapshot`);
2. writes a unique marker to /dev/kmsg and remembers where the console log ends
   (:attr:`PhaseEngine.current`, which a caller reads after a crash to salvage the console);
3. runs the command with a timeout;
4. writes an end marker and waits until the console log shows it, then classifies the console
   log between the two markers line by line, however long it is
   (:func:`kmodlab.observe.stream.scan_file`: kernel events with their guilty module, KTAP
   wherever it is, a printk flood's rate; memory bounded, only a bounded excerpt of the text
   kept, see :meth:`PhaseEngine.scan_phase`);
5. when the console does not show the markers, falls back to the kernel log after the marker,
   cut in the guest and bounded (``dmesg | sed -n '/<marker>/,$p' | tail -c LIMIT``, see
   :meth:`PhaseEngine.read_log`), classified the same way;
6. optionally shrinks and takes a /proc snapshot after.

The result is a :class:`PhaseRecord`; :class:`kmodlab.runner.Phase` is the same record with both
snapshots present.  Timeouts and crashes are not caught here: a KernelCrash or CommandTimeout
from the guest goes to the caller, which classifies it (the grader charges it to the student,
the runner lets it through).

The console log is the phase's record: the guests boot with ``ignore_loglevel``, so every kernel
line reaches it, and a report printed after the phase's first few KB, or early in a flood of
megabytes, is classified like any other.  The fallback read is bounded, so a module that prints
without end cannot exhaust the host's memory:

* the marker in dmesg: the lines after it (their most recent LIMIT bytes when the phase printed
  more, with a note);
* the marker not in dmesg (read again a few times): the ring buffer overflowed and lost it
  (``echo > /dev/kmsg`` stores the marker before the command starts, so a marker that is gone was
  overwritten, and everything dmesg still holds is from this phase).  The console log, which
  receives every kernel line, gives the phase from its marker; if it does not show the marker
  either, the most recent LIMIT bytes of dmesg are the phase's.  Either way a note says so.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from kmodlab.channel.protocol import CommandResult, shell_quote
from kmodlab.console.sync import SYNC_TIMEOUT, sync_console
from kmodlab.errors import GuestError
from kmodlab.observe import (
    BuddyInfo,
    KernelEvent,
    KtapDocument,
    MemInfo,
    SlabInfo,
    VmallocInfo,
    parse_buddyinfo,
    parse_meminfo,
    parse_slabinfo,
    parse_vmallocinfo,
)
from kmodlab.observe.ktap import ktap_verdict
from kmodlab.observe.stream import Flood, Scan, scan_file, scan_lines

if TYPE_CHECKING:
    from kmodlab.guest import Guest

PROC_FILES = ("/proc/slabinfo", "/proc/buddyinfo", "/proc/vmallocinfo", "/proc/meminfo")
_SEPARATOR = "--kmodlab-proc-separator--"

LOG_BYTES = 4 << 20
"""Default bound of the text kept of one phase's kernel log (its beginning and end; every line
is classified whatever the bound)."""
MARKER_ATTEMPTS = 5
"""How many times dmesg is read while the phase marker does not show."""
CONSOLE_SEARCH_BYTES = 1 << 20
"""How far past the phase's start the console log is searched for the marker."""

OVERFLOW_NOTE = ("the kernel log overflowed its ring buffer (the module printed too much); "
                 "only its most recent part was read")


@dataclass(frozen=True)
class ProcSnapshot:
    """The allocator-facing /proc files, read in one round trip and parsed."""

    slabinfo: SlabInfo
    buddyinfo: BuddyInfo
    vmallocinfo: VmallocInfo
    meminfo: MemInfo
    raw: dict[str, str] = field(repr=False, default_factory=dict)

    @classmethod
    def capture(cls, guest: Guest, extra: Mapping[str, str] | None = None) -> ProcSnapshot:
        """Read :data:`PROC_FILES` in one round trip; ``extra`` adds ``{raw key: command}``
        whose output is kept in ``raw`` (the leak detector's /proc/zoneinfo, page size)."""
        extra = dict(extra or {})
        commands = [*(f"cat {path}" for path in PROC_FILES), *extra.values()]
        result = guest.run(f"; echo {_SEPARATOR}; ".join(commands), isolate=False,
                           must_succeed=True)
        parts = result.stdout.split(_SEPARATOR + "\n")
        if len(parts) != len(commands):
            raise GuestError(f"reading {', '.join([*PROC_FILES, *extra])} returned "
                             f"{len(parts)} parts")
        raw = dict(zip((*PROC_FILES, *extra), parts, strict=True))
        return cls(parse_slabinfo(raw["/proc/slabinfo"]), parse_buddyinfo(raw["/proc/buddyinfo"]),
                   parse_vmallocinfo(raw["/proc/vmallocinfo"]), parse_meminfo(raw["/proc/meminfo"]),
                   raw)


# --------------------------------------------------------------------------- slab shrinking

Shrink = bool | Iterable[str]
"""Which slab caches to shrink before a snapshot: False none, True every cache, or names."""


def shrink_command(caches: Shrink = True) -> str | None:
    """The shell command that kmem_cache_shrink()s ``caches`` through sysfs
    (mm/slub.c:shrink_store(): CPU and per-cpu partial slabs are flushed and empty slabs freed,
    so slabinfo's active_objs is the number of live objects until the next allocation).

    True: every cache; names: those caches (shell-quoted; caches that do not exist are skipped,
    a module's own cache exists only while it is loaded); False or no names: None, nothing to do.
    """
    if caches is False:
        return None
    if caches is True:
        paths = "/sys/kernel/slab/*/shrink"
    else:
        names = sorted({caches} if isinstance(caches, str) else set(caches))
        if not names:
            return None
        paths = " ".join(shell_quote(f"/sys/kernel/slab/{name}/shrink") for name in names)
    return f'for f in {paths}; do [ -e "$f" ] && echo 1 > "$f"; done 2>/dev/null; true'


def shrink_slabs(guest: Guest, caches: Shrink = True, timeout: float = 30.0) -> None:
    """Shrink ``caches`` (see :func:`shrink_command`) in ``guest``."""
    command = shrink_command(caches)
    if command is not None:
        guest.run(command, timeout=timeout, isolate=False, must_succeed=True)


def take_snapshot(guest: Guest, shrink: Shrink = False) -> ProcSnapshot:
    """Shrink ``shrink`` (nothing by default), then read the /proc snapshot."""
    shrink_slabs(guest, shrink)
    return ProcSnapshot.capture(guest)


# --------------------------------------------------------------------------- the phase record

@dataclass
class PhaseRecord:
    """What one phase did.  ``before``/``after`` are None when not asked for; ``notes`` say
    what was unusual about the log read (ring buffer overflow, a log past its bound)."""

    name: str
    command: CommandResult
    log: str                        # the kernel log lines of this phase
    ktap: list[KtapDocument]
    events: list[KernelEvent]
    before: ProcSnapshot | None
    after: ProcSnapshot | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    expect_ktap: bool = False       # the module promises KTAP: none at all is a failure
    scan: Scan | None = field(default=None, repr=False)   # the whole log's classification

    @property
    def flood(self) -> Flood | None:
        """The printk flood of this phase (its rate), or None."""
        return self.scan.flood if self.scan is not None else None

    @property
    def complaints(self) -> list[KernelEvent]:
        """Kernel reports of this phase other than the expected out-of-tree taint notices."""
        return [e for e in self.events if e.is_complaint]

    @property
    def ok(self) -> bool:
        """The command succeeded, the KTAP passed as kunit_tool would judge it (no document is a
        failure when one was expected), and no crash/WARN/leak/lockup report."""
        return (self.command.ok and ktap_verdict(self.ktap, expect=self.expect_ktap).ok
                and not self.complaints)

    def result(self, name: str) -> Any:
        """The KTAP result named ``name`` in this phase's documents."""
        for doc in self.ktap:
            for _path, res in doc.walk():
                if res.name == name:
                    return res
        raise KeyError(f"no KTAP test point '{name}' in phase {self.name}")

    @classmethod
    def of(cls, record: PhaseRecord) -> Self:
        """``record`` as this (sub)class."""
        return cls(**{f.name: getattr(record, f.name) for f in fields(record)})


@dataclass
class PhaseStart:
    """A phase under way: its marker, where the console log stood when it began, and (once the
    command returned or raised) how long the command took."""

    name: str
    marker: str
    console_offset: int
    seconds: float | None = None


# --------------------------------------------------------------------------- pure log helpers

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def make_marker(prefix: str, name: str) -> str:
    """A unique kernel log line for the start of phase ``name`` (safe in sed and sh)."""
    return f"{_UNSAFE.sub('_', prefix)}-{_UNSAFE.sub('_', name)}-{secrets.token_hex(6)}"


def log_command(marker: str, limit: int) -> str:
    """The guest command printing the kernel log from ``marker`` on, its last ``limit`` bytes."""
    return f"dmesg | sed -n {shell_quote(f'/{marker}/,$p')} | tail -c {int(limit)}"


def tail_command(limit: int) -> str:
    return f"dmesg | tail -c {int(limit)}"


def cut_after_marker(text: str, marker: str) -> str | None:
    """The lines after the (first) line holding ``marker``, or None when it is absent."""
    idx = text.find(marker)
    if idx < 0:
        return None
    nl = text.find("\n", idx)
    return text[nl + 1:] if nl >= 0 else ""


def limit_note(limit: int) -> str:
    return (f"the kernel log of this phase passed {limit} bytes (the module printed too much); "
            "only its most recent part was read")


def console_note(truncated: bool, limit: int) -> str:
    what = (f"the most recent {limit} bytes of the phase were" if truncated
            else "the phase's lines were")
    return ("the kernel log overflowed its ring buffer (the module printed too much); "
            f"{what} read from the console log")


def console_after_marker(path: Path, offset: int, marker: str, limit: int,
                         search: int = CONSOLE_SEARCH_BYTES) -> tuple[str, bool] | None:
    """From the console log ``path``: the text after the ``marker`` line found within ``search``
    bytes of ``offset`` (its last ``limit`` bytes) and whether it was cut; None without marker."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(offset)
            head = fh.read(search)
            idx = head.find(marker.encode())
            if idx < 0:
                return None
            nl = head.find(b"\n", idx)
            if nl < 0:
                return "", False
            start = offset + nl + 1
            begin = max(start, size - limit)
            fh.seek(begin)
            data = fh.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace"), begin > start


def console_since(path: Path, offset: int, limit: int) -> str | None:
    """The first ``limit`` bytes of the console log ``path`` from ``offset`` (None if unreadable)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(limit)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- the engine

class PhaseEngine:
    """Runs phases on one guest (see the module docstring).

    ``log_bytes`` bounds each phase's kernel log; ``shrink`` says which slab caches to shrink
    before every snapshot this engine takes; ``marker_prefix`` starts each marker line.
    """

    def __init__(self, guest: Guest, *, log_bytes: int = LOG_BYTES, shrink: Shrink = False,
                 marker_prefix: str = "kmodlab-phase", attempts: int = MARKER_ATTEMPTS,
                 command_timeout: float = 30.0, sync_timeout: float = SYNC_TIMEOUT) -> None:
        self.guest = guest
        self.log_bytes = log_bytes
        self.command_timeout = command_timeout
        self.sync_timeout = sync_timeout
        self.shrink = shrink
        self.marker_prefix = marker_prefix
        self.attempts = attempts
        self.current: PhaseStart | None = None

    def snapshot(self) -> ProcSnapshot:
        """Shrink the engine's caches, then read /proc."""
        return take_snapshot(self.guest, self.shrink)

    def begin(self, name: str) -> PhaseStart:
        """Note where the console log stands and write the phase's marker to /dev/kmsg."""
        try:
            offset = self.guest.console_log.stat().st_size
        except OSError:
            offset = 0
        start = PhaseStart(name, make_marker(self.marker_prefix, name), offset)
        self.current = start
        self.guest.run(f"echo {shell_quote(start.marker)} > /dev/kmsg", isolate=False,
                       must_succeed=True, timeout=self.command_timeout)
        return start

    def run(self, name: str, command: str, *, timeout: float = 60.0, before: bool = False,
            after: bool = False, expect_ktap: bool = False,
            since: int | None = None) -> PhaseRecord:
        """Run ``command`` as phase ``name``, with /proc snapshots ``before``/``after`` it;
        ``expect_ktap``: the module promises KTAP output (kmodlab's families do).  ``since``:
        the phase's window starts at this console offset instead of its own marker (the end of
        the previous phase's window: what the module printed between two phases, a delayed
        WARN from its work item, is then this phase's)."""
        snap_before = self.snapshot() if before else None
        start = self.begin(name)
        t0 = time.monotonic()
        try:
            result = self.guest.run(command, timeout=timeout)
        finally:
            start.seconds = time.monotonic() - t0
        scan, notes = self.scan_phase(start)
        events = list(scan.events)
        if since is not None:
            between = scan_file(self.guest.console_log, since, end_marker=start.marker,
                                keep_bytes=self.log_bytes)
            if between is not None and between.ended and between.events:
                events = [*between.events, *events]
                notes.append(f"{len(between.events)} kernel report(s) printed before this "
                             "phase began, after the previous one ended, are counted here")
        snap_after = self.snapshot() if after else None
        return PhaseRecord(name, result, scan.text, scan.ktap, events, snap_before,
                           snap_after, start.seconds, notes, expect_ktap, scan)

    def scan_phase(self, start: PhaseStart) -> tuple[Scan, list[str]]:
        """The whole kernel log of the phase ``start`` began, classified, and notes on the read.

        An end marker closes the window; once the console log shows it, the console between
        the two markers is scanned line by line (bounded memory, every line classified).  A
        console that does not show both markers (none configured, or it was cut) falls back to
        :meth:`read_log`."""
        end = make_marker(self.marker_prefix, f"{start.name}-end")
        if sync_console(self.guest, end, start.console_offset, self.sync_timeout,
                        self.command_timeout):
            scan = scan_file(self.guest.console_log, start.console_offset,
                             start_marker=start.marker, end_marker=end,
                             keep_bytes=self.log_bytes, wall_seconds=start.seconds)
            if scan is not None and scan.started and scan.ended:
                return scan, scan.notes()
        text, notes = self.read_log(start, end_marker=end)
        scan = scan_lines(text.splitlines(), keep_bytes=self.log_bytes,
                          wall_seconds=start.seconds)
        return scan, notes + scan.notes()

    def scan_since_start(self) -> Scan | None:
        """After a crash or hang (dmesg cannot be read): the console log since the current
        phase's marker (or its start offset), to its end, classified; None without a phase."""
        start = self.current
        if start is None:
            return None
        scan = scan_file(self.guest.console_log, start.console_offset, start_marker=start.marker,
                         keep_bytes=self.log_bytes, wall_seconds=start.seconds)
        if scan is not None and not scan.started:
            scan = scan_file(self.guest.console_log, start.console_offset,
                             keep_bytes=self.log_bytes, wall_seconds=start.seconds)
        return scan

    def read_log(self, start: PhaseStart, end_marker: str | None = None) -> tuple[str, list[str]]:
        """The kernel log lines after ``start``'s marker (up to ``end_marker``'s line, when it is
        there), and notes on how they were read: the fallback when the console log does not
        show the phase.

        Cut in the guest, so only this phase's lines travel (the ring buffer holds 100+ KB
        after a few runs), and at most ``log_bytes`` of them.
        """
        limit = self.log_bytes
        for attempt in range(self.attempts):
            text = self.guest.run(log_command(start.marker, limit), isolate=False,
                                  must_succeed=True, timeout=self.command_timeout).stdout
            if text:
                text = _before_marker(text, end_marker)
                cut = cut_after_marker(text, start.marker)
                if cut is not None:
                    return cut, []
                return text, [limit_note(limit)]   # the phase printed more than the bound
            if attempt + 1 < self.attempts:
                time.sleep(0.05)
        found = console_after_marker(self.guest.console_log, start.console_offset, start.marker,
                                     limit)
        if found is not None:
            text, truncated = found
            return _before_marker(text, end_marker), [console_note(truncated, limit)]
        tail = self.guest.run(tail_command(limit), isolate=False, must_succeed=True,
                              timeout=self.command_timeout).stdout
        return _before_marker(tail, end_marker), [OVERFLOW_NOTE]

    def console_since_start(self, limit: int) -> str | None:
        """After a crash or hang (dmesg cannot be read): the first ``limit`` bytes the console
        received since the current phase began, or None without a phase."""
        if self.current is None:
            return None
        return console_since(self.guest.console_log, self.current.console_offset, limit)


def _before_marker(text: str, marker: str | None) -> str:
    """``text`` up to the line holding ``marker`` (all of it without one)."""
    if marker is None:
        return text
    idx = text.find(marker)
    return text if idx < 0 else text[:text.rfind("\n", 0, idx) + 1]


def run_phase(guest: Guest, name: str, command: str, *, timeout: float = 60.0,
              before: bool = True, after: bool = True, **engine: Any) -> PhaseRecord:
    """One phase with a one-off :class:`PhaseEngine` (``engine``: its keyword options)."""
    return PhaseEngine(guest, **engine).run(name, command, timeout=timeout, before=before,
                                             after=after)


__all__ = [
    "CONSOLE_SEARCH_BYTES", "LOG_BYTES", "MARKER_ATTEMPTS", "OVERFLOW_NOTE", "PROC_FILES",
    "PhaseEngine", "PhaseRecord", "PhaseStart", "ProcSnapshot", "Shrink", "console_after_marker",
    "console_note", "console_since", "cut_after_marker", "limit_note", "log_command",
    "make_marker", "run_phase", "shrink_command", "shrink_slabs", "tail_command",
    "take_snapshot",
]
