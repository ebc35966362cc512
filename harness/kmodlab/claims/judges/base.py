"""What every judge shares: the Finding it returns, the Judge interface and the registry.

A judge is a small class with two methods:

* ``model(target, **args)``: the verdict the reference model gives for one kernel, with the
  true answer in words and the kernel rule it follows;
* ``measured(target, obs, **args)``: the verdict from the probes' KTAP values (None when the
  probe did not run), and whether the measurement agrees with the model.

``claims.yaml`` names a judge and its arguments; :data:`JUDGES` maps the names to instances.
Verdicts: ``true``, ``false``, ``depends`` (on the arch, version, a boot option or luck),
``dated`` (right for the source's era, not for these kernels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kmodlab.claims.observations import Observations, Values
from kmodlab.claims.target import ModelTarget


@dataclass(frozen=True)
class Finding:
    """One verdict on one kernel."""

    verdict: str            # true | false | depends | dated
    value: str              # the number(s) behind it, short, for a table cell
    answer: str             # the true answer on this kernel, in words
    rule: str = ""          # kernel source (model) or KTAP tests (measurement) it rests on
    agrees: bool | None = None   # measurement only: consistent with the model?
    short: str = ""         # the answer in a few words, for the summary table
    # False for measurements the model cannot predict (timings): they are reported, never
    # counted as agreeing or disagreeing, so a loaded machine cannot fail a claim.
    comparable: bool = True


class NotMeasured(Exception):
    """Raised by :meth:`Judge.measured` when the probes ran but did not set up what the claim
    needs (e.g. memory was not fragmented): no measurement, with the reason, never a verdict."""


class Judge:
    """Base: subclasses set ``name`` and implement :meth:`model` and :meth:`measured`."""

    name: ClassVar[str]

    def model(self, target: ModelTarget, **args: Any) -> Finding:
        raise NotImplementedError

    def measured(self, target: ModelTarget, obs: Observations, **args: Any) -> Finding | None:
        raise NotImplementedError


JUDGES: dict[str, Judge] = {}


def register(cls: type[Judge]) -> type[Judge]:
    JUDGES[cls.name] = cls()
    return cls


def int_value(values: Values | None, key: str) -> int | None:
    if values is None:
        return None
    v = values.get(key)
    return v if isinstance(v, int) else None


def count_text(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def size_text(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"
