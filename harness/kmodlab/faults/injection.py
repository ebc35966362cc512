"""Making the N-th allocation of one task fail, and reading what the kernel says about it.

The mechanism is the kernel's own (Documentation/fault-injection/fault-injection.rst):

* ``/proc/thread-self/fail-nth`` (fs/proc/base.c:proc_fail_nth_write()): the N-th call of
  this task that reaches lib/fault-inject.c:should_fail_ex() fails, whatever the attributes'
  probability (zero here, so nothing else ever fails).  The count survives exec, so the shell
  writes it and then becomes ``insmod``; fork clears it (kernel/fork.c), so children of a
  command are never injected.
* failslab (mm/failslab.c:__should_failslab()) and fail_page_alloc
  (mm/page_alloc.c:__should_fail_alloc_page()) decide which calls count: by default they skip
  every allocation that may sleep (``ignore-gfp-wait``) and page allocations below order 1
  (``min-order``), which would hide almost every GFP_KERNEL call of a module; kmodlab turns
  both off.  User pages (``__GFP_HIGHMEM`` in GFP_HIGHUSER) stay skipped: they are the
  program's own memory, never the module's.
* Each attribute's ``times`` counter drops from 1 to 0 when it injects (should_fail_ex()'s
  ``fail:`` path), so reading it afterwards says whether the N-th call existed, even for an
  allocation with __GFP_NOWARN, whose failure prints nothing.  Otherwise fail_dump() prints
  ``FAULT_INJECTION: forcing a failure.`` and, with ``verbose`` 2, the failing call's stack:
  kmodlab.observe.dmesg makes it a ``fault_injection`` event, and its frames name the site.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kmodlab.errors import ConfigError
from kmodlab.observe.dmesg import KernelEvent

DEBUGFS = "/sys/kernel/debug"
ATTRIBUTES = ("failslab", "fail_page_alloc")
"""The fault_attr directories kmodlab arms (mm/failslab.c, mm/page_alloc.c)."""

REQUIRED = ("CONFIG_FAULT_INJECTION", "CONFIG_FAILSLAB", "CONFIG_FAIL_PAGE_ALLOC",
            "CONFIG_FAULT_INJECTION_DEBUG_FS")
"""What a kernel needs (kconfig/fault-injection.config builds it)."""

FAIL_NTH = "/proc/thread-self/fail-nth"
MOUNT_DEBUGFS = f"{{ grep -q ' {DEBUGFS} debugfs ' /proc/mounts || mount -t debugfs none {DEBUGFS}; }}"
"""Mount debugfs unless it is (the guest's /init may already have)."""

_SETTINGS = {
    "failslab": {"probability": "0", "verbose": "2", "ignore-gfp-wait": "N",
                 "cache-filter": "N"},
    "fail_page_alloc": {"probability": "0", "verbose": "2", "ignore-gfp-wait": "N",
                        "ignore-gfp-highmem": "Y", "min-order": "0"},
}
# One attribute at a time: the other's calls must not even be counted, so they are turned
# away before should_fail_ex() -- failslab by its cache filter with no cache marked
# SLAB_FAILSLAB (mm/failslab.c), fail_page_alloc by a minimum order no allocation reaches.
# Counting both in one sequence makes it depend on timing: the stack depot (KASAN, page_owner)
# takes a page with __GFP_NOWARN whenever its pool runs out, which interrupts elsewhere decide.
_OFF = {"failslab": {"cache-filter": "Y"}, "fail_page_alloc": {"min-order": "99"}}


def missing_options(kconfig: Mapping[str, str]) -> list[str]:
    return [name for name in REQUIRED if kconfig.get(name) != "y"]


def require_fault_injection(kconfig: Mapping[str, str], label: str) -> None:
    """Refuse a kernel that cannot inject, naming what it lacks and how to get it."""
    missing = missing_options(kconfig)
    if missing:
        raise ConfigError(f"{label} cannot inject allocation failures: it lacks "
                          f"{', '.join(missing)}; use a kernel built with them: "
                          "--config fault-injection (e.g. --config fault-injection,debug-memory)")


def arm_command(attribute: str) -> str:
    """One guest command: debugfs mounted, ``attribute`` (failslab or fail_page_alloc) set as
    described above with ``times`` at 1 (so it shows whether it injected), the other one
    turned off."""
    if attribute not in ATTRIBUTES:
        raise ConfigError(f"fault attributes are {', '.join(ATTRIBUTES)}, not {attribute!r}")
    parts = [MOUNT_DEBUGFS]
    for attr, settings in _SETTINGS.items():
        values = {**settings, "times": "1"} | ({} if attr == attribute else _OFF[attr])
        for key, value in values.items():
            parts.append(f"echo {value} > {DEBUGFS}/{attr}/{key}")
    return " && ".join(parts)


def failing_task_command() -> str:
    """Arm failslab so that every slab allocation of a task with ``make_it_fail`` set fails
    (probability 100, task-filter Y, no limit, no log): for measurements of what callers see
    (kmodlab's claims), where the module sets ``current->make_it_fail`` itself."""
    settings = {"probability": "100", "interval": "1", "times": "-1", "task-filter": "Y",
                "verbose": "0", "ignore-gfp-wait": "N", "cache-filter": "N"}
    parts = [MOUNT_DEBUGFS]
    parts += [f"echo {v} > {DEBUGFS}/failslab/{k}" for k, v in settings.items()]
    return " && ".join(parts)


def inject_command(nth: int, command: str) -> str:
    """``command`` (one program: it is exec'd) with its task's ``nth`` call failing."""
    if nth < 1:
        raise ConfigError(f"fail-nth counts from 1, not {nth}")
    return f"echo {nth} > {FAIL_NTH} && exec {command}"


def injected_command() -> str:
    """Prints ``<attr> <times>`` per attribute: times 0 means it injected."""
    return "; ".join(f"echo {attr} $(cat {DEBUGFS}/{attr}/times)" for attr in ATTRIBUTES)


def parse_injected(text: str) -> str | None:
    """The attribute that injected (``failslab``/``fail_page_alloc``), or None."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ATTRIBUTES and parts[1] == "0":
            return parts[0]
    return None


_ATTR_LINE = re.compile(r"^name (?P<attr>\S+), interval")


@dataclass(frozen=True)
class InjectedFailure:
    """One ``FAULT_INJECTION: forcing a failure.`` report: which attribute and the stack."""

    attribute: str | None
    text: str                       # the report without log prefixes (frames included)

    def mentions(self, pattern: re.Pattern[str]) -> bool:
        return bool(pattern.search(self.text))


def injected_failure(events: list[KernelEvent]) -> InjectedFailure | None:
    """The first injection report among a phase's events."""
    for event in events:
        if event.kind == "fault_injection":
            attr = None
            for line in event.text.splitlines():
                if (m := _ATTR_LINE.match(line.strip())):
                    attr = m["attr"]
                    break
            return InjectedFailure(attr, event.text)
    return None


__all__ = ["ATTRIBUTES", "DEBUGFS", "FAIL_NTH", "REQUIRED", "InjectedFailure", "arm_command",
           "failing_task_command",
           "inject_command", "injected_command", "injected_failure", "missing_options",
           "parse_injected", "require_fault_injection"]
