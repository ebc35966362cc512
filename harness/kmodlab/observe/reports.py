"""What a memory-debugging report says, read out of its text: the detector, the bug, the access,
the object and the allocation/free stacks.

A :class:`~kmodlab.observe.dmesg.KernelEvent` says *that* the kernel complained; this says what
about, in the terms a student fixing the bug needs ("write of size 1, 120 bytes into a 128-byte
kmalloc-128 object allocated at waste.c:13").  The formats are the kernel's:

* KASAN (mm/kasan/report.c: print_error_description(), print_address_description()):
  ``BUG: KASAN: <bug> in <function>``, ``<Read|Write> of size N at addr ... by task ...``,
  ``Allocated by task N:`` / ``Freed by task N:`` stacks, ``The buggy address belongs to the
  object at ... which belongs to the cache <cache> of size N``, ``The buggy address is located N
  bytes <inside of|to the right of|to the left of> N-byte region``;
* KFENCE (mm/kfence/report.c: kfence_report_error()): ``BUG: KFENCE: <bug> in <function>``,
  ``kfence-#N: ..., size=N, cache=<cache>``, ``allocated by task`` / ``freed by task`` stacks;
* kmemleak (mm/kmemleak.c: print_unreferenced(), printed with pr_fmt "kmemleak: " when
  kmemleak.verbose=1): ``unreferenced object 0x... (size N):`` and a ``backtrace:``;
* SLUB debugging (mm/slub.c: slab_bug(), object_err()): ``BUG <cache> (<taint>): <what>``;
* might_sleep() (kernel/sched/core.c: __might_resched()): ``BUG: sleeping function called from
  invalid context at <file:line>`` with ``in_atomic(): N, irqs_disabled(): N``;
* lockdep (kernel/locking/lockdep.c): ``WARNING: possible recursive locking detected`` and the
  other ``WARNING: ... lock ...`` headers;
* UBSAN (lib/ubsan.c: ubsan_prologue()): ``UBSAN: <bug> in <file:line>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kmodlab.observe.dmesg import KernelEvent, strip_prefixes

_FRAME = re.compile(r"^\s*(?:\[<[0-9a-fx?]+>\]\s*)?(?P<frame>(?:\? )?[\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+"
                    r"(?: \[\w+\])?|0x[0-9a-f]+)\s*$")
_HELPERS = re.compile(r"^(?:kasan_|__kasan_|kfence_|__kfence_|kmemleak_|__kmalloc|kmalloc_|"
                      r"kmem_cache_alloc|__kmem_cache_alloc|slab_|__slab_|___slab_|"
                      r"kfree|__kmem_cache_free|kmem_cache_free|set_track|save_stack|"
                      r"stack_trace_save|__might_|___might_|might_|dump_stack|"
                      r"print_report|print_address|create_object|__create_object)")


@dataclass(frozen=True)
class ReportDetails:
    """The facts of one memory-debugging report.  Fields a detector does not print are ''."""

    detector: str                      # KASAN, KFENCE, kmemleak, SLUB, might_sleep, lockdep...
    bug: str                           # slab-out-of-bounds, use-after-free, unreferenced object...
    where: str = ""                    # the function the bug happened in (as the report names it)
    access: str = ""                   # "Write of size 1"
    object: str = ""                   # "120 bytes inside of 128-byte region, cache kmalloc-128"
    allocated: tuple[str, ...] = field(default=())   # frames of the allocation, helpers dropped
    freed: tuple[str, ...] = field(default=())       # frames of the free, helpers dropped
    context: str = ""                  # might_sleep: "in_atomic(): 1, irqs_disabled(): 0"

    def describe(self) -> str:
        """One line: ``KASAN slab-out-of-bounds in oob_init: Write of size 1, 120 bytes ...``."""
        text = f"{self.detector} {self.bug}"
        if self.where:
            text += f" in {self.where}"
        extra = [p for p in (self.access, self.object, self.context) if p]
        return text + (": " + "; ".join(extra) if extra else "")


def _frames(lines: list[str], start: int) -> tuple[str, ...]:
    """The stack frames after line ``start`` (a "... by task N:" header), helpers dropped."""
    out = []
    for text in lines[start + 1:]:
        m = _FRAME.match(text.removeprefix("kmemleak:"))
        if not m:
            if out or text.strip():
                break
            continue
        frame = m["frame"]
        if frame.startswith("? "):
            continue
        if not _HELPERS.match(frame):
            out.append(frame)
    return tuple(out)


def _index(lines: list[str], pattern: str) -> int | None:
    rx = re.compile(pattern)
    return next((i for i, text in enumerate(lines) if rx.search(text)), None)


def _kasan(lines: list[str], first: re.Match[str]) -> ReportDetails:
    bug, _, where = first["rest"].partition(" in ")
    access = next((m[1] for t in lines if (m := re.match(r"^(Read|Write) of size (\d+)", t))), "")
    if access:
        access = next(t.split(" at ")[0] for t in lines if t.startswith(access))
    obj = ""
    cache = next((m for t in lines if (m := re.search(r"which belongs to the cache (\S+) of size "
                                                         r"(\d+)", t))), None)
    located = next((m for t in lines if (m := re.search(
        r"located (\d+) bytes (inside of|to the right of|to the left of)", t))), None)
    region = next((m for t in lines if (m := re.search(r"(\d+)-byte region", t))), None)
    if located and region:
        obj = f"{located[1]} bytes {located[2]} a {region[1]}-byte object"
        if cache:
            obj += f" (cache {cache[1]})"
    alloc = _index(lines, r"^Allocated by task")
    free = _index(lines, r"^Freed by task")
    return ReportDetails("KASAN", bug.strip(), where.strip(), access, obj,
                         _frames(lines, alloc) if alloc is not None else (),
                         _frames(lines, free) if free is not None else ())


def _kfence(lines: list[str], first: re.Match[str]) -> ReportDetails:
    bug, _, where = first["rest"].partition(" in ")
    access = next((t.split(" at ")[0] for t in lines
                   if re.match(r"^(Out-of-bounds|Use-after-free|Invalid) ", t)), "")
    meta = next((m for t in lines if (m := re.search(r"kfence-#\d+: .*size=(\d+), cache=(\S+)", t))),
                None)
    obj = f"a {meta[1]}-byte object (cache {meta[2]})" if meta else ""
    alloc = _index(lines, r"^allocated by task")
    free = _index(lines, r"^freed by task")
    return ReportDetails("KFENCE", bug.strip(), where.strip(), access, obj,
                         _frames(lines, alloc) if alloc is not None else (),
                         _frames(lines, free) if free is not None else ())


def _kmemleak(lines: list[str], first: re.Match[str]) -> ReportDetails:
    stripped = [t.removeprefix("kmemleak: ") for t in lines]
    size = re.search(r"\(size (\d+)\)", first["rest"])
    back = _index(stripped, r"^\s*backtrace:")
    allocated = _frames(stripped, back) if back is not None else ()
    where = next((f for f in allocated if "[" in f), allocated[0] if allocated else "")
    return ReportDetails("kmemleak", "unreferenced object", where.split("+")[0],
                         object=f"{size[1]} bytes never freed" if size else "",
                         allocated=allocated)


def _slub(lines: list[str], first: re.Match[str]) -> ReportDetails:
    cache, what = first["cache"], first["rest"]
    def site(pattern: str) -> tuple[str, ...]:
        """mm/slub.c:print_track(): "INFO: Allocated in <function> age=... cpu=... pid=..."."""
        i = _index(lines, pattern)
        return (lines[i].split(" in ", 1)[1].split(" age=")[0],) if i is not None else ()

    return ReportDetails("SLUB", what.strip(), object=f"cache {cache}",
                         allocated=site(r"^INFO: Allocated in "), freed=site(r"^INFO: Freed in "))


def _might_sleep(lines: list[str], first: re.Match[str]) -> ReportDetails:
    context = next((t.strip() for t in lines if t.strip().startswith("in_atomic()")), "")
    return ReportDetails("might_sleep", "sleeping function called from invalid context",
                         first["rest"].strip(), context=context)


def _lockdep(lines: list[str], first: re.Match[str]) -> ReportDetails:
    return ReportDetails("lockdep", first["rest"].strip().rstrip("!"))


def _ubsan(lines: list[str], first: re.Match[str]) -> ReportDetails:
    bug, _, where = first["rest"].partition(" in ")
    return ReportDetails("UBSAN", bug.strip(), where.strip())


_PARSERS = (
    (re.compile(r"^BUG: KASAN: (?P<rest>.*)"), _kasan),
    (re.compile(r"^BUG: KFENCE: (?P<rest>.*)"), _kfence),
    (re.compile(r"^(?:kmemleak: )?unreferenced object (?P<rest>.*)"), _kmemleak),
    (re.compile(r"^BUG (?P<cache>\S+) \(.*\): (?P<rest>.*)"), _slub),
    (re.compile(r"^BUG: (?:sleeping function called from invalid context at|scheduling while "
                r"atomic:) ?(?P<rest>.*)"), _might_sleep),
    (re.compile(r"^WARNING: (?P<rest>(?:possible|inconsistent|bad unlock|suspicious|"
                r"held lock|lock held|Nested lock).*)"), _lockdep),
    (re.compile(r"^UBSAN: (?P<rest>.*)"), _ubsan),
)


def report_details(event: KernelEvent | str) -> ReportDetails | None:
    """The details of a memory-debugging report (an event, or its text); None for other
    reports (an oops, a plain WARNING)."""
    text = event.text if isinstance(event, KernelEvent) else strip_prefixes(event)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        for pattern, parse in _PARSERS:
            m = pattern.match(line)
            if m:
                return parse(lines[i:], m)
    return None


__all__ = ["ReportDetails", "report_details"]
