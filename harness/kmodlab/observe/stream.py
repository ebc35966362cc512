"""The whole kernel log of a test or phase, classified in one pass with bounded memory.

A verdict read from a bounded *slice* of the log is a false pass waiting to happen: a WARN
printed after the slice's first 20 KB, or an oops before a flood's most recent 4 MiB, is never
seen.  So the log is read line by line from the window's start to its end, however long it is,
and only what a verdict and a report need is kept:

* every kernel report (:mod:`kmodlab.observe.dmesg`'s classifier: each at most ``max_lines``
  lines), its byte offset in the window and its guilty module (:mod:`kmodlab.observe.blame`);
  past ``max_events`` only the first report of each kind and module not yet seen is kept, so
  an oops after a thousand WARNs still counts;
* the KTAP documents (:class:`kmodlab.observe.ktap.KtapStream`), wherever they are in the log,
  at most ``ktap_lines`` KTAP lines;
* counts (lines, bytes, kernel timestamps), the rate of the last ``FLOOD_LINES`` lines (a printk
  flood) and the ``** N printk messages dropped **`` notices of a console that fell behind;
* the first and last ``keep_bytes / 2`` of the text, for a human reading a report.

Memory is bounded by those limits whatever the log's length; time is linear in it.  The guest
console log (every kernel line: the guests boot with ``ignore_loglevel``) is the usual input,
read with :func:`scan_file` between two marker lines.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.observe.blame import guilty_module
from kmodlab.observe.dmesg import EventDetector, KernelEvent, parse_line
from kmodlab.observe.ktap import KtapDocument, KtapStream

KEEP_BYTES = 64 << 10
"""Text of the log kept for reports: its first and last half of this."""
MAX_EVENTS = 64
"""Reports kept in full; past it, only the first of each (kind, module) not yet seen."""
MAX_KTAP_LINES = 50_000
"""KTAP lines (version, plan, result, diagnostic) parsed at most."""
MAX_LINE_BYTES = 16 << 10
"""A line longer than this is cut (its bytes still count)."""
FLOOD_LINES = 2000
"""A flood is at least this many lines..."""
FLOOD_RATE = 500.0
"""... the last FLOOD_LINES of them printed at this many lines per second or faster."""
CHUNK = 1 << 20
EXCERPT_NOTE_BYTES = 4096
"""A report this deep in its window says, in its excerpt, how much log came before it."""

_DROPPED = re.compile(r"\*\* (\d+) printk messages dropped \*\*")
_KTAP_START = frozenset("#onKT1B")


def human_bytes(n: float) -> str:
    """``3.2 MB`` (decimal units, as a reader estimates a log's size)."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass(frozen=True)
class Flood:
    """A printk flood: how much and how fast (``rate_source``: what the rate was measured from,
    the kernel's own timestamps or, without them, wall time)."""

    lines: int
    bytes: int
    seconds: float            # the span the rate was measured over
    rate_lines: float         # lines per second
    rate_bytes: float         # bytes per second
    dropped: int              # messages the console dropped ("** N printk messages dropped **")
    rate_source: str = "kernel timestamps"

    def describe(self) -> str:
        dropped = f", and the console dropped {self.dropped:,} more" if self.dropped else ""
        return (f"printk flood: {self.lines:,} lines ({human_bytes(self.bytes)}) of kernel log"
                f"{dropped}, at {self.rate_lines:,.0f} lines/s ({human_bytes(self.rate_bytes)}/s, "
                f"measured from the {self.rate_source})")


@dataclass(frozen=True)
class Found:
    """One report of the window: where it starts (bytes of the window before it) and the module
    its guilty frame names (None when it names none)."""

    event: KernelEvent
    offset: int
    module: str | None


@dataclass
class Scan:
    """What :class:`LogScanner` kept of one window of kernel log."""

    found: list[Found] = field(default_factory=list)
    omitted_events: int = 0
    ktap: list[KtapDocument] = field(default_factory=list)
    ktap_truncated: bool = False
    lines: int = 0
    bytes: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    head: str = ""
    tail: str = ""
    kept_bytes: int = 0        # bytes of the window that head and tail hold
    flood: Flood | None = None
    started: bool = True       # the start marker was seen (or none was asked for)
    ended: bool = False        # the end marker was seen
    position: int = 0          # file offset where the next window begins (after the end
    #                            marker's line; at a last line without its newline yet)

    @property
    def events(self) -> list[KernelEvent]:
        return [f.event for f in self.found]

    @property
    def complaints(self) -> list[Found]:
        """Reports other than the expected module taint notices."""
        return [f for f in self.found if f.event.is_complaint]

    @property
    def omitted_bytes(self) -> int:
        return max(0, self.bytes - self.kept_bytes)

    @property
    def text(self) -> str:
        """The window's text, bounded: its beginning and its end, with a note between."""
        if not self.omitted_bytes:
            return self.head + self.tail
        return (self.head + f"[... {human_bytes(self.omitted_bytes)} of kernel log not kept "
                f"here; every line was classified ...]\n" + self.tail)

    def excerpt(self, found: Found) -> str:
        """The report's own lines, saying how much log came before it when that was a lot."""
        before = (f"[... {human_bytes(found.offset)} of kernel log before this ...]\n"
                  if found.offset > EXCERPT_NOTE_BYTES else "")
        return before + found.event.excerpt

    def notes(self) -> list[str]:
        """What a reader should know about how the window was read."""
        out: list[str] = []
        if self.omitted_bytes:
            out.append(f"the kernel log of this phase was {human_bytes(self.bytes)} "
                       f"({self.lines:,} lines); every line was classified, the log kept here "
                       "is its beginning and its end")
        if self.omitted_events:
            out.append(f"{self.omitted_events} more kernel report(s) of kinds already shown "
                       "were counted but not kept")
        if self.ktap_truncated:
            out.append(f"KTAP past its first {MAX_KTAP_LINES:,} lines was not parsed")
        return out


class LogScanner:
    """Feed a window of kernel log line by line (:meth:`feed_line`), then :meth:`finish`.

    ``candidates``: module names a report may be blamed on through ``Modules linked in:`` alone
    (see :func:`kmodlab.observe.blame.guilty_module`).
    """

    def __init__(self, *, candidates: Collection[str] = (), keep_bytes: int = KEEP_BYTES,
                 max_events: int = MAX_EVENTS, max_lines: int = 100,
                 ktap_lines: int = MAX_KTAP_LINES) -> None:
        self.scan = Scan()
        self._candidates = tuple(candidates)
        self._half = keep_bytes // 2
        self._head_bytes = 0
        self._head: list[str] = []
        self._tail: deque[tuple[str, int]] = deque()
        self._tail_bytes = 0
        self._max_events = max_events
        self._kinds_seen: set[tuple[str, str | None]] = set()
        self._detector = EventDetector(max_lines=max_lines)
        self._offsets: deque[tuple[int, int]] = deque(maxlen=max_lines + 4)
        self._ktap = KtapStream()
        self._ktap_left = ktap_lines
        self._recent: deque[tuple[float, int]] = deque(maxlen=FLOOD_LINES)
        self._dropped = 0

    def feed_line(self, raw: str, size: int | None = None) -> None:
        """One line (without its newline); ``size``: its length in the file, if it was cut."""
        raw = raw.rstrip("\r")
        size = (len(raw.encode("utf-8", errors="replace")) if size is None else size) + 1
        scan = self.scan
        offset = scan.bytes
        scan.lines += 1
        scan.bytes += size
        self._keep_text(raw, size)
        line = parse_line(raw) if raw[:1] in "[<0123456789" else None
        if line is not None and line.timestamp is not None:
            if scan.first_ts is None:
                scan.first_ts = line.timestamp
            scan.last_ts = line.timestamp
            self._recent.append((line.timestamp, size))
        text = line.text if line is not None else raw
        if "printk messages dropped" in text and (m := _DROPPED.search(text)):
            self._dropped += int(m.group(1))
        self._offsets.append((scan.lines, offset))
        for event in self._detector.feed_line(raw):
            self._keep_event(event)
        self._detector.events.clear()
        stripped = text.lstrip()
        if stripped[:1] in _KTAP_START:
            if self._ktap_left > 0:
                self._ktap_left -= 1
                self._ktap.feed(text)
            else:
                scan.ktap_truncated = True

    def _keep_text(self, raw: str, size: int) -> None:
        if self._head_bytes + size <= self._half and not self._tail:
            self._head.append(raw)
            self._head_bytes += size
            return
        self._tail.append((raw, size))
        self._tail_bytes += size
        while self._tail_bytes > self._half and self._tail:
            self._tail_bytes -= self._tail.popleft()[1]

    def _keep_event(self, event: KernelEvent) -> None:
        module = guilty_module(event, self._candidates)
        key = (event.kind, module)
        if len(self.scan.found) >= self._max_events and key in self._kinds_seen:
            self.scan.omitted_events += 1
            return
        if len(self.scan.found) >= 2 * self._max_events:
            self.scan.omitted_events += 1
            return
        self._kinds_seen.add(key)
        first = event.lines[0].line_no if event.lines else event.line_no
        offset = next((off for no, off in self._offsets if no == first), 0)
        self.scan.found.append(Found(event, offset, module))

    def finish(self, wall_seconds: float | None = None) -> Scan:
        """Close the open report and the KTAP; measure a flood (from the kernel's timestamps,
        or ``wall_seconds`` for a window without them)."""
        for event in self._detector.finish():
            self._keep_event(event)
        scan = self.scan
        scan.ktap = self._ktap.close()
        scan.head = "".join(line + "\n" for line in self._head)
        scan.tail = "".join(line + "\n" for line, _ in self._tail)
        scan.kept_bytes = self._head_bytes + self._tail_bytes
        scan.flood = self._flood(wall_seconds)
        return scan

    def _flood(self, wall_seconds: float | None) -> Flood | None:
        scan = self.scan
        if scan.lines + self._dropped < FLOOD_LINES:
            return None
        if len(self._recent) >= FLOOD_LINES:
            span = self._recent[-1][0] - self._recent[0][0]
            recent_bytes = sum(size for _, size in self._recent)
            span = max(span, 1e-6)
            rate, brate, source = len(self._recent) / span, recent_bytes / span, \
                "kernel timestamps"
        elif wall_seconds and wall_seconds > 0:
            span = wall_seconds
            rate, brate, source = scan.lines / span, scan.bytes / span, "wall time"
        else:
            return None
        if rate < FLOOD_RATE:
            return None
        return Flood(scan.lines, scan.bytes, span, rate, brate, self._dropped, source)


def scan_lines(lines: Iterable[str], **options: object) -> Scan:
    """A :class:`Scan` of lines already in memory (tests, a salvaged excerpt)."""
    wall = options.pop("wall_seconds", None)
    scanner = LogScanner(**options)  # type: ignore[arg-type]
    for raw in lines:
        scanner.feed_line(raw)
    return scanner.finish(wall)  # type: ignore[arg-type]


def scan_file(path: Path, offset: int = 0, *, start_marker: str | None = None,
              end_marker: str | None = None, end_offset: int | None = None,
              wall_seconds: float | None = None, **options: object) -> Scan | None:
    """A :class:`Scan` of the log file ``path`` from byte ``offset``: after the line holding
    ``start_marker`` (when given), up to the line holding ``end_marker`` or byte ``end_offset``
    (when given; else to the end of the file).  None when the file cannot be read.

    Read in chunks; a line longer than ``MAX_LINE_BYTES`` is cut (its bytes still count).
    """
    scanner = LogScanner(**options)  # type: ignore[arg-type]
    scan = scanner.scan
    scan.started = start_marker is None
    start_b = start_marker.encode() if start_marker else b""
    end_b = end_marker.encode() if end_marker else b""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            position = offset           # bytes read
            consumed = offset           # start of the line being assembled
            partial = b""
            partial_size = 0
            while not scan.ended:
                want = CHUNK if end_offset is None else min(CHUNK, end_offset - position)
                if want <= 0:
                    break
                chunk = fh.read(want)
                if not chunk:
                    break
                position += len(chunk)
                pieces = chunk.split(b"\n")
                last = pieces.pop()
                for piece in pieces:
                    if partial:
                        line, size = partial + piece[:MAX_LINE_BYTES], partial_size + len(piece)
                        partial, partial_size = b"", 0
                    else:
                        line, size = piece[:MAX_LINE_BYTES], len(piece)
                    consumed += size + 1
                    if _take(scanner, line, size, start_b, end_b):
                        break
                else:
                    room = MAX_LINE_BYTES - len(partial)
                    if room > 0:
                        partial += last[:room]
                    partial_size += len(last)
            scan.position = consumed
            if partial and not scan.ended:
                _take(scanner, partial, partial_size, start_b, end_b)
    except OSError:
        return None
    return scanner.finish(wall_seconds)


def _take(scanner: LogScanner, line: bytes, size: int, start: bytes, end: bytes) -> bool:
    """Feed one line, honouring the markers; True once the end marker is reached."""
    scan = scanner.scan
    if not scan.started:
        scan.started = start in line
        return False
    if end and end in line:
        scan.ended = True
        return True
    text = line.decode("utf-8", errors="replace")
    scanner.feed_line(text, size)
    return False


__all__ = ["FLOOD_LINES", "FLOOD_RATE", "KEEP_BYTES", "MAX_EVENTS", "Flood", "Found",
           "LogScanner", "Scan", "human_bytes", "scan_file", "scan_lines"]
