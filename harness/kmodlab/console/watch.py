"""Tail the kernel console log and notice when the kernel dies.

QEMU writes the kernel console to a file (every kernel line is kept for the user); a thread reads
it as it grows and classifies fatal reports, so a waiting command can fail *now* with the report
instead of timing out later.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kmodlab.observe.dmesg import BENIGN_KINDS, CRASH_KINDS, classify, parse_line


def classify_console_line(raw: str) -> str | None:
    """The crash kind of a console line (panic, oops, bug, kasan, kfence), else None.

    One classifier for the whole project: kmodlab.observe.dmesg decides what a report is.  Other
    reports are not fatal: a WARNING, a slab leak, or a lockup (soft/hard lockup, RCU stall, hung
    task: the kernel goes on, and a command that never returns times out), unless the kernel
    panics on it, and then the panic line is fatal.
    """
    line = parse_line(raw)
    verdict = classify(line.text if line else raw)
    if verdict is not None and verdict[0] in CRASH_KINDS:
        return verdict[0]
    return None


EXCERPT_LINES = 60
LOOKBACK_BYTES = 16 << 10
"""How far before a panic line its cause is looked for (a hung-task report with its stack)."""


def report_excerpt(before: str, text: str, kind: str) -> str:
    """The fatal report from its first line: ``text`` starts at the fatal line, ``before`` is
    the console before it.  A panic is usually the end of a report, not its start: a detector
    set to panic (hung_task_panic, softlockup_panic) prints its report first, so a panic's
    excerpt starts at the last report header before it (within :data:`LOOKBACK_BYTES`).
    Otherwise a few lines of context (the "cut here" marker, the module taint) lead in."""
    lines = before.splitlines()
    lead = 5
    if kind == "panic":
        for i in range(len(lines) - 1, max(-1, len(lines) - 200), -1):
            line = parse_line(lines[i])
            found = classify(line.text if line else lines[i])
            if found is not None and found[0] not in BENIGN_KINDS \
                    and not found[0].startswith("module_"):
                lead = len(lines) - i
                break
    return "\n".join(lines[max(0, len(lines) - lead):] + text.splitlines()[:EXCERPT_LINES])


@dataclass(frozen=True)
class FatalEvent:
    kind: str      # a crash kind of kmodlab.observe.dmesg: panic, oops, bug, kasan, kfence
    line: str      # the line that matched
    offset: int    # byte offset of that line in the console log


class ConsoleWatcher:
    def __init__(self, log_path: Path, poll_interval: float = 0.05) -> None:
        self.log_path = log_path
        self._poll = poll_interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._offset = 0
        self._partial = b""
        self.events: list[FatalEvent] = []
        self._thread = threading.Thread(target=self._loop, name="kmodlab-console", daemon=True)

    def start(self) -> ConsoleWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.poll_once()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self._poll)

    def poll_once(self) -> None:
        """Read what the log gained since the last call and classify its complete lines."""
        with self._lock:
            try:
                with open(self.log_path, "rb") as fh:
                    fh.seek(self._offset)
                    chunk = fh.read()
            except FileNotFoundError:
                return
            if not chunk:
                return
            base = self._offset - len(self._partial)
            self._offset += len(chunk)
            data = self._partial + chunk
            lines = data.split(b"\n")
            self._partial = lines.pop()
            pos = base
            for raw in lines:
                text = raw.decode("utf-8", errors="replace").rstrip("\r")
                kind = classify_console_line(text)
                if kind is not None:
                    self.events.append(FatalEvent(kind, text, pos))
                pos += len(raw) + 1

    def first_fatal(self) -> FatalEvent | None:
        with self._lock:
            return self.events[0] if self.events else None

    def excerpt(self, event: FatalEvent, settle: float = 0.3) -> str:
        """The report from its first line, after letting the kernel finish printing it."""
        time.sleep(settle)
        start = max(0, event.offset - LOOKBACK_BYTES)
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(start)
                data = fh.read(event.offset - start + 64 * 1024)
        except OSError:
            return event.line
        before = data[:event.offset - start].decode("utf-8", errors="replace")
        if start > 0:                        # the window began inside a line: drop it
            before = before.partition("\n")[2]
        return report_excerpt(before, data[event.offset - start:].decode("utf-8", "replace"),
                              event.kind)

    def tail(self, n: int = 30) -> str:
        try:
            data = self.log_path.read_bytes()[-16384:]
        except OSError:
            return ""
        return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-n:])
