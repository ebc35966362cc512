"""Claims about allocation context: which allocations may sleep, so must not be made with a
spinlock held.  The measurement needs a kernel built with CONFIG_DEBUG_ATOMIC_SLEEP (the
``debug-context`` fragment): its might_sleep() reports every call that *could* sleep, whether or
not this one did (kernel/sched/core.c:__might_resched()), so a report is proof and its absence
on such a kernel is the evidence that the path has no sleeping point."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, register
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget

MIGHT_SLEEP = "might_sleep"
"""The kind kmodlab.observe.dmesg gives ``BUG: sleeping function called from invalid context``."""


def _what(allocator: str, gfp: str) -> str:
    return "vmalloc()" if allocator == "vmalloc" else f"kmalloc({gfp})"


@register
class MaySleep(Judge):
    """"<allocation> may sleep" (``claimed: true``) or "... never sleeps" (``claimed: false``)."""

    name = "may_sleep"

    def model(self, target: ModelTarget, *, allocator: str, gfp: str = "GFP_KERNEL",
              claimed: bool, **_: Any) -> Finding:
        may = target.model.may_sleep(allocator, gfp)
        what = _what(allocator, gfp)
        answer = (f"{what} may sleep: called with a spinlock held, a debug kernel reports it "
                  "(might_sleep)" if may.value else
                  f"{what} never sleeps: it takes no path with a sleeping point")
        return Finding("true" if may.value == claimed else "false",
                       "may sleep" if may.value else "never sleeps", f"{answer} ({may.reason})",
                       may.rule, short="may sleep" if may.value else "never sleeps")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str, allocator: str,
                 gfp: str = "GFP_KERNEL", claimed: bool, **_: Any) -> Finding | None:
        values = obs.values(probe, "atomic_alloc")
        if values is None or probe not in obs.events:
            return None
        reports = [e for e in obs.events[probe] if e.startswith(MIGHT_SLEEP + ":")]
        reported = bool(reports)
        kernel = obs.kernels.get(probe, obs.release)
        what = _what(allocator, gfp)
        answer = (f"{what} under a spinlock on {kernel}: " +
                  (reports[0] if reported else "no might_sleep report") +
                  f"; allocated={values.get('allocated')}")
        return Finding("true" if reported == claimed else "false",
                       "reported" if reported else "no report", answer,
                       f"{probe}/atomic_alloc + the kernel log",
                       reported == target.model.may_sleep(allocator, gfp).value)
