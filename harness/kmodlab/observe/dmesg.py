"""Kernel log lines and the reports in them (oops, BUG, WARNING, panic, slab leaks, KASAN...).

Accepted line prefixes (kernel/printk/printk.c:info_print_prefix() and devkmsg_read()):

* ``[   12.345678] text``             (dmesg, the console with printk.time=1)
* ``<6>[   12.345678] text``          (``dmesg -r``: the syslog priority first)
* ``[   12.345678][    T1] text``     (CONFIG_PRINTK_CALLER adds the task or CPU)
* ``6,1234,12345678,-;text``          (a raw /dev/kmsg record; its `` KEY=value`` lines are skipped)

Events: a *trigger* line starts a report; the report runs until its end marker
(``---[ end trace ...]---`` from kernel/panic.c:print_oops_end_marker(), ``---[ end Kernel panic``
from panic(), the closing ``=====`` line of a KASAN/KFENCE report; a lockup report has no end
marker of its own: the `` </TASK>`` closing an x86 backtrace ends it, or on arm64 the first
unindented line after its ``Call trace:`` frames), until the next unrelated
report starts, or for at most ``max_lines`` lines.  Triggers that belong to the report already
open are folded into it: the ``Oops:`` line after ``BUG: kernel NULL pointer dereference``, the
``invalid opcode`` after ``kernel BUG at``, the kmem_cache_destroy() WARNING inside a slab-leak
report, and a panic (panic_on_warn, oops=panic) which then becomes the event's kind.

Classification choices (documented because they differ from a naive "BUG: means bug"):
``BUG: unable to handle ...`` and ``BUG: kernel NULL pointer dereference`` are page-fault oopses
(arch/x86/mm/fault.c:show_fault_oops()), so their kind is ``oops``; ``BUG: KASAN:`` and
``BUG: KFENCE:`` are ``kasan``/``kfence``; SLUB's ``BUG <cache> (...): Objects remaining`` is a
``slab_leak`` (mm/slub.c:list_slab_objects()), other ``BUG <cache> (...)`` lines are slab
corruption, kind ``bug``.

Lockups are kind ``lockup``, whatever detector reported them: the soft lockup and hard lockup
watchdogs (kernel/watchdog.c, ``watchdog: BUG: soft lockup - CPU#0 stuck for 22s!``, ``NMI
watchdog: Watchdog detected hard LOCKUP on cpu 1``), RCU stall warnings of every flavour
(kernel/rcu/tree_stall.h, ``rcu: INFO: rcu_preempt self-detected stall on CPU``, ``rcu: INFO:
rcu_sched detected stalls on CPUs/tasks:``, expedited and RCU-tasks stalls too) and the hung task
detector (kernel/hung_task.c, ``INFO: task insmod:212 blocked for more than 120 seconds.``).  A
lockup is a complaint but not a crash: the kernel goes on (the guest layer does not stop it).  When
the kernel is told to panic on one (softlockup_panic, hung_task_panic, panic_on_rcu_stall...), the
panic is folded into the lockup report, or, if the report's header is not in the text, the panic's
own reason (``softlockup: hung tasks``, ``Hard LOCKUP``, ``RCU Stall``...) names the lockup:
:attr:`KernelEvent.lockup` says which in both cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from kmodlab.errors import KernelCrash
from kmodlab.observe.errors import ParseError

SOURCE = "dmesg"

_PREFIX = re.compile(
    r"^(?:<(?P<prio>\d+)>)?\[\s*(?P<ts>\d+\.\d+)\](?:\[\s*(?P<caller>[TC]\d+)\])? ?(?P<text>.*)$"
)
_PRIO_ONLY = re.compile(r"^<(?P<prio>\d+)>(?P<text>.*)$")
_KMSG = re.compile(r"^(?P<prio>\d+),(?P<seq>\d+),(?P<usec>\d+),[^;]*;(?P<text>.*)$")


@dataclass(frozen=True)
class DmesgLine:
    """One log line.  ``text`` is the message without prefix (leading indentation kept)."""

    text: str
    timestamp: float | None = None
    level: int | None = None
    caller: str | None = None
    line_no: int = 0
    raw: str = ""


def parse_line(raw: str, line_no: int = 0) -> DmesgLine | None:
    """The line with its prefix decoded, or None when it has no kernel log prefix."""
    raw = raw.rstrip("\r\n")
    m = _PREFIX.match(raw)
    if m:
        prio = m.group("prio")
        return DmesgLine(m.group("text"), float(m.group("ts")),
                         int(prio) & 7 if prio is not None else None, m.group("caller"),
                         line_no, raw)
    m = _KMSG.match(raw)
    if m:
        return DmesgLine(m.group("text"), int(m.group("usec")) / 1e6, int(m.group("prio")) & 7,
                         None, line_no, raw)
    m = _PRIO_ONLY.match(raw)
    if m:
        return DmesgLine(m.group("text"), None, int(m.group("prio")) & 7, None, line_no, raw)
    return None


def parse_dmesg(text: str, strict: bool = True) -> list[DmesgLine]:
    """All lines of a dmesg capture.  With ``strict`` a non-empty line without a log prefix is
    a ParseError (a console log mixes in other output: use ``strict=False`` there, which keeps
    such lines with ``timestamp=None``)."""
    out: list[DmesgLine] = []
    kmsg_record = False
    for line_no, raw in enumerate(text.splitlines(), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        if kmsg_record and raw.startswith(" ") and "=" in raw:
            continue  # /dev/kmsg dictionary line (SUBSYSTEM=..., DEVICE=...)
        line = parse_line(raw, line_no)
        if line is None:
            if strict:
                raise ParseError(SOURCE, line_no, raw,
                                 "expected a kernel log prefix such as '[   12.345678] '")
            line = DmesgLine(raw, line_no=line_no, raw=raw)
        kmsg_record = _KMSG.match(raw) is not None
        out.append(line)
    return out


def strip_prefixes(text: str) -> str:
    """The log with timestamps/levels removed (lines without a prefix are kept as they are)."""
    lines = []
    for raw in text.splitlines():
        line = parse_line(raw)
        lines.append(line.text if line else raw.rstrip("\r"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- events

CRASH_KINDS = frozenset({"panic", "oops", "bug", "kasan", "kfence"})
"""Kinds after which the kernel state is not trustworthy (the guest layer raises KernelCrash)."""

BENIGN_KINDS = frozenset({"module_taint", "fault_injection", "alloc_failure"})
"""Kinds that are not a complaint: the taint notice on every load of an out-of-tree, unsigned
module, the notice of a failure kmodlab injected on purpose (lib/fault-inject.c), and the page
allocator's notice that an allocation failed (a failure is the caller's to handle, not a bug)."""

_T = re.compile
# The lockup detectors' header lines, as (what, pattern).  The prefixes are the detectors'
# pr_fmt(): "watchdog: " (kernel/watchdog.c), "NMI watchdog: " (6.1's kernel/watchdog_hld.c),
# "rcu: " (kernel/rcu/tree.c); older kernels print the same messages without them.
LOCKUPS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("soft lockup", _T(r"^(?:watchdog: )?BUG: soft lockup - (?P<subject>CPU#\d+ stuck for .*)")),
    ("hard lockup", _T(r"^(?:(?:NMI )?watchdog: )?(?:CPU\d+: )?Watchdog detected "
                       r"(?P<subject>hard LOCKUP on cpu \d+.*)")),
    ("RCU stall", _T(r"^(?:rcu: )?INFO: (?P<subject>\S+ self-detected stall on CPU.*)")),
    ("RCU stall", _T(r"^(?:rcu: )?INFO: (?P<subject>\S+ detected (?:expedited )?stalls on "
                     r"(?:CPUs/tasks|tasks).*)")),
    ("hung task", _T(r"^INFO: task (?P<subject>.+:\d+ blocked for more than \d+ seconds)")),
)
# panic() reasons of the detectors told to panic (softlockup_panic, hardlockup_panic,
# hung_task_panic, panic_on_rcu_stall).
LOCKUP_PANICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("soft lockup", _T(r"^softlockup: hung tasks")),
    ("hard lockup", _T(r"^(?:Hard LOCKUP|(?:CPU\d+: )?Watchdog detected hard LOCKUP)")),
    ("RCU stall", _T(r"^RCU Stall")),
    ("hung task", _T(r"^hung_task: blocked tasks")),
)
# (kind, pattern) in matching order; the named group "subject" says what the report is about.
TRIGGERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("panic", _T(r"^Kernel panic - not syncing:? ?(?P<subject>.*)")),
    # lib/fault-inject.c:fail_dump(): an injected failure (fail-nth, failslab...), then
    # "name <attr>, interval ..." and, with verbose=2, the stack of the failing call
    ("fault_injection", _T(r"^FAULT_INJECTION: (?P<subject>forcing a failure)\.?")),
    # mm/page_alloc.c:warn_alloc() (unless __GFP_NOWARN): "<comm>: page allocation failure:
    # order:0, mode:0x800(GFP_NOWAIT), nodemask=...", then the stack and show_mem()
    ("alloc_failure", _T(r"^(?P<subject>\S+: page allocation failure: order:\d+, "
                         r"mode:[^,\s]+)")),
    *(("lockup", pattern) for _what, pattern in LOCKUPS),
    ("kasan", _T(r"^BUG: KASAN: (?P<subject>.*)")),
    ("kfence", _T(r"^BUG: KFENCE: (?P<subject>.*)")),
    ("ubsan", _T(r"^UBSAN: (?P<subject>.*)")),
    # mm/slub.c:list_slab_objects() -> slab_err(): "BUG <cache> (<taint>): Objects remaining ..."
    ("slab_leak", _T(r"^BUG (?P<subject>\S+) \(.*\): Objects remaining")),
    # mm/slab_common.c:kmem_cache_destroy() WARN text
    ("slab_leak", _T(r"^kmem_cache_destroy (?P<subject>\S+): Slab cache still has objects")),
    ("oops", _T(r"^Oops(?::| -)\s*(?P<subject>.*)")),
    ("oops", _T(r"^Internal error: (?P<subject>Oops.*)")),
    ("oops", _T(r"^BUG: (?P<subject>unable to handle .*)")),
    ("oops", _T(r"^BUG: (?P<subject>kernel NULL pointer dereference.*)")),
    ("oops", _T(r"^(?P<subject>general protection fault.*)")),
    ("oops", _T(r"^Unable to handle kernel (?P<subject>.*)")),
    ("oops", _T(r"^(?P<subject>invalid opcode: .*)")),
    ("bug", _T(r"^kernel BUG at (?P<subject>\S+?)!?$")),
    # kernel/sched/core.c:__might_resched(): a report, not a crash -- it only dumps the stack
    # and the caller goes on (into the sleep it may or may not take)
    ("might_sleep", _T(r"^BUG: (?P<subject>sleeping function called from invalid context.*)")),
    ("bug", _T(r"^BUG: (?P<subject>.*)")),
    ("bug", _T(r"^BUG (?P<subject>\S+) \(.*\): ")),  # SLUB corruption reports
    ("warning", _T(r"^WARNING: CPU: \d+ PID: \d+ at (?P<subject>.*)")),
    ("warning", _T(r"^WARNING: at (?P<subject>.*)")),
    ("warning", _T(r"^WARNING: (?P<subject>(?:possible|suspicious|inconsistent|bad unlock|"
                   r"held lock|lock held|Nested lock).*)")),
)
# kernel/module/main.c (6.1/6.12): taint notices and load failures, always one line.
MODULE_MESSAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("taint", _T(r"^(?P<subject>\S+): loading out-of-tree module taints kernel\.")),
    ("taint", _T(r"^(?P<subject>\S+): module verification failed: ")),
    ("taint", _T(r"^(?P<subject>\S+): module license '.*' taints kernel\.")),
    ("taint", _T(r"^(?P<subject>\S+): module is from the staging directory")),
    ("load_error", _T(r"^(?P<subject>\S+): Unknown symbol \S+")),
    ("load_error", _T(r"^(?P<subject>\S+): disagrees about version of symbol ")),
    ("load_error", _T(r"^(?P<subject>\S+): version magic '.*' should be ")),
    ("load_error", _T(r"^(?P<subject>\S+): Unknown parameter `")),
    ("load_error", _T(r"^(?P<subject>\S+): no symbol version for ")),
    ("load_error", _T(r"^(?P<subject>\S+): exports duplicate symbol ")),
    ("load_error", _T(r"^(?P<subject>\S+): module PLT section\(s\) missing")),
    ("load_error", _T(r"^module (?P<subject>\S+): \.gnu\.linkonce\.this_module section size")),
    ("load_error", _T(r"^do_init_module: '(?P<subject>\S+)'->init suspiciously returned")),
)
_END_TRACE = _T(r"^---\[ end (?:trace|Kernel panic)")
_SEPARATOR = _T(r"^(?:=+|-+\[ cut here \]-+)$")
_EQUALS = _T(r"^={20,}$")
_END_TASK = _T(r"^\s*</TASK>\s*$")  # x86 show_stack(): the end of a lockup's backtrace
_ARM64_TRACE = _T(r"^Call trace:$")  # arm64 dump_backtrace(): indented frames follow
_STACK_DUMPS = ("lockup", "might_sleep", "fault_injection", "alloc_failure")  # reports that end with a bare dump_stack()
_ABSORB_WINDOW = 20  # an oops/BUG trigger this close to an open oops/BUG is the same report


def classify(text: str) -> tuple[str, str] | None:
    """(kind, subject) of a trigger line, or None.  Indented lines never start a report."""
    if text[:1].isspace():
        return None
    for kind, pattern in TRIGGERS:
        m = pattern.match(text)
        if m:
            return kind, m.group("subject").strip()
    for subkind, pattern in MODULE_MESSAGES:
        m = pattern.match(text)
        if m:
            return f"module_{subkind}", m.group("subject")
    return None


def lockup_of(text: str) -> str | None:
    """What lockup a header line reports ("soft lockup", "hard lockup", "RCU stall", "hung
    task"), or None."""
    for what, pattern in LOCKUPS:
        if pattern.match(text):
            return what
    return None


@dataclass(frozen=True)
class KernelEvent:
    """One report.  ``kind`` is the kind of its first trigger (``panic`` if a panic occurred in
    it); ``kinds`` lists every trigger folded in, in order."""

    kind: str
    kinds: tuple[str, ...]
    title: str
    subject: str
    lines: tuple[DmesgLine, ...]
    complete: bool
    ended_by: str          # "end marker", "single line", "next event", "line limit", "end of input",
    #                        "end of backtrace" (a lockup report on arm64)
    line_no: int
    timestamp: float | None

    @property
    def excerpt(self) -> str:
        """The report as it appeared (with prefixes)."""
        return "\n".join(line.raw or line.text for line in self.lines)

    @property
    def text(self) -> str:
        """The report's message texts without prefixes."""
        return "\n".join(line.text for line in self.lines)

    @property
    def is_crash(self) -> bool:
        return self.kind in CRASH_KINDS

    @property
    def is_complaint(self) -> bool:
        """The kernel reported a problem (anything but the expected module taint notices)."""
        return self.kind not in BENIGN_KINDS

    @property
    def lockup(self) -> str | None:
        """What kind of lockup this report is ("soft lockup", "hard lockup", "RCU stall", "hung
        task"), or None: a lockup header, possibly followed by the panic it caused, or a panic
        whose reason is a lockup detector's."""
        if "lockup" in self.kinds:
            return lockup_of(self.title)
        if self.kind == "panic":
            for what, pattern in LOCKUP_PANICS:
                if pattern.match(self.subject):
                    return what
        return None

    @property
    def module(self) -> str | None:
        """For module_* events, the module name."""
        return self.subject if self.kind.startswith("module_") else None

    def as_crash(self, **context: str) -> KernelCrash:
        """The KernelCrash the guest layer raises for this report (context: state, log_tail,
        log_path, as GuestError takes them)."""
        return KernelCrash(self.kind, self.excerpt, **context)


@dataclass
class _Open:
    kind: str
    kinds: list[str]
    title: str
    subject: str
    lines: list[DmesgLine]
    line_no: int
    timestamp: float | None
    last_trigger_at: int = 0
    in_backtrace: bool = False   # an arm64 "Call trace:" of a lockup report is being printed

    def close(self, complete: bool, ended_by: str) -> KernelEvent:
        return KernelEvent(self.kind, tuple(self.kinds), self.title, self.subject,
                           tuple(self.lines), complete, ended_by, self.line_no, self.timestamp)


def _absorbs(current: _Open, new_kind: str) -> bool:
    """Whether a new trigger belongs to the report already open."""
    if new_kind == "panic":
        return True
    if current.kind == "slab_leak":
        return new_kind in ("slab_leak", "warning")
    if current.kind in ("oops", "bug") and new_kind in ("oops", "bug"):
        return len(current.lines) - current.last_trigger_at <= _ABSORB_WINDOW
    return False


@dataclass
class EventDetector:
    """Streaming report detector: feed console or dmesg text as it arrives.

    ``feed()`` returns the events completed by that chunk; ``open_event`` shows a report still
    being printed (a caller that must react at once, such as the guest layer raising
    KernelCrash, can act on it); ``finish()`` closes it at the end of input.
    """

    max_lines: int = 100
    events: list[KernelEvent] = field(default_factory=list)
    _partial: str = ""
    _line_no: int = 0
    _open: _Open | None = None
    _previous: DmesgLine | None = None
    _before_previous: DmesgLine | None = None

    def feed(self, chunk: str) -> list[KernelEvent]:
        data = self._partial + chunk
        parts = data.split("\n")
        self._partial = parts.pop()
        done: list[KernelEvent] = []
        for raw in parts:
            done.extend(self.feed_line(raw))
        return done

    def feed_line(self, raw: str) -> list[KernelEvent]:
        self._line_no += 1
        raw = raw.rstrip("\r")
        line = parse_line(raw, self._line_no) or DmesgLine(raw, line_no=self._line_no, raw=raw)
        done: list[KernelEvent] = []
        found = classify(line.text)
        cur = self._open
        if cur is not None and cur.in_backtrace and not line.text[:1].isspace():
            done.append(self._close(True, "end of backtrace"))
            cur = None
        if cur is not None:
            report_trigger = found is not None and not found[0].startswith("module_")
            if report_trigger and not _absorbs(cur, found[0]):  # type: ignore[index]
                done.append(self._close(False, "next event"))
            else:
                cur.lines.append(line)
                if report_trigger:
                    cur.kinds.append(found[0])  # type: ignore[index]
                    cur.last_trigger_at = len(cur.lines) - 1
                    if found[0] == "panic":  # type: ignore[index]
                        cur.kind = "panic"
                if cur.kind in _STACK_DUMPS and _ARM64_TRACE.match(line.text):
                    cur.in_backtrace = True
                if _END_TRACE.match(line.text) or (
                        cur.kind in ("kasan", "kfence") and _EQUALS.match(line.text)) or (
                        cur.kind in _STACK_DUMPS and _END_TASK.match(line.text)):
                    done.append(self._close(True, "end marker"))
                elif len(cur.lines) >= self.max_lines:
                    done.append(self._close(False, "line limit"))
                self._before_previous, self._previous = self._previous, line
                return done
        if found:
            kind, subject = found
            if kind.startswith("module_"):
                event = KernelEvent(kind, (kind,), line.text, subject, (line,), True,
                                    "single line", line.line_no, line.timestamp)
                self.events.append(event)
                done.append(event)
            else:
                lines = [line]
                prev, before = self._previous, self._before_previous
                if prev is not None and _SEPARATOR.match(prev.text):
                    lines.insert(0, prev)
                elif (prev is not None and before is not None and _SEPARATOR.match(before.text)
                      and classify(prev.text) is None):
                    # WARN(1, "msg"): "cut here", the message, then the WARNING: line
                    # (kernel/panic.c:__warn_printk() prints the message first)
                    lines[:0] = [before, prev]
                self._open = _Open(kind, [kind], line.text, subject, lines, line.line_no,
                                   line.timestamp, len(lines) - 1)
        self._before_previous, self._previous = self._previous, line
        return done

    def _close(self, complete: bool, ended_by: str) -> KernelEvent:
        assert self._open is not None
        event = self._open.close(complete, ended_by)
        self._open = None
        self.events.append(event)
        return event

    @property
    def open_event(self) -> KernelEvent | None:
        if self._open is None:
            return None
        return self._open.close(False, "still open")

    def finish(self) -> list[KernelEvent]:
        """Flush a trailing partial line and close the open report (as incomplete)."""
        done: list[KernelEvent] = []
        if self._partial:
            done.extend(self.feed_line(self._partial))
            self._partial = ""
        if self._open is not None:
            done.append(self._close(False, "end of input"))
        return done


def find_events(text: str | Iterable[str], max_lines: int = 100) -> list[KernelEvent]:
    """Every report in a complete log (string or iterable of lines)."""
    detector = EventDetector(max_lines=max_lines)
    if isinstance(text, str):
        detector.feed(text if text.endswith("\n") else text + "\n")
    else:
        for raw in text:
            detector.feed_line(raw)
    detector.finish()
    return list(detector.events)


def find_lockup(text: str | Iterable[str], max_lines: int = 100) -> KernelEvent | None:
    """The first lockup report in a log (see :attr:`KernelEvent.lockup`), or None."""
    return next((e for e in find_events(text, max_lines) if e.lockup), None)


parse = parse_dmesg
