"""One cross-check: a quantity the model predicted, what the guest showed, and the verdict.

A row is exact (the observation must equal the prediction) or bounded (it must fall inside the
documented range).  A missing observation is a failure of its own ("not observed"): a check
that silently compares nothing would pass vacuously.  Rows marked informational are shown but
never fail the run; they are for quantities the kernel shares with other users (a busy kmalloc
cache) where no bound would be honest.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kmodlab.model.prediction import Prediction

MATCH = "match"
MISMATCH = "mismatch"
WITHIN = "within bound"
OUT = "out of bound"
NOT_OBSERVED = "not observed"
VERDICTS = (MATCH, MISMATCH, WITHIN, OUT, NOT_OBSERVED)
FAILING = frozenset({MISMATCH, OUT, NOT_OBSERVED})


@dataclass(frozen=True)
class CheckRow:
    """One predicted-vs-observed comparison.

    ``predicted``/``observed`` are plain values (int, str, tuple, None); for a bounded row the
    bound applies to ``observed`` and ``predicted`` is the model's central value.
    """

    family: str
    test: str
    quantity: str
    predicted: Any
    observed: Any
    rule: str
    exact: bool
    bound: tuple[int, int] | None
    verdict: str
    reason: str = ""
    informational: bool = False
    probe: str = ""
    topic: str = ""              # groups related quantities in the summary table

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if not self.exact and self.bound is None:
            raise ValueError(f"{self.test}/{self.quantity}: a bounded row needs a bound")

    @property
    def failed(self) -> bool:
        return not self.informational and self.verdict in FAILING


def judge(predicted: Any, observed: Any, exact: bool, bound: tuple[int, int] | None) -> str:
    """The verdict of one comparison (``observed`` None means the guest did not show it)."""
    if observed is None:
        return NOT_OBSERVED
    if exact:
        return MATCH if observed == predicted else MISMATCH
    assert bound is not None
    lo, hi = bound
    try:
        inside = lo <= observed <= hi
    except TypeError:
        return OUT
    return WITHIN if inside else OUT


class Rows:
    """Collects the rows of one probe run: ``rows.exact(...)``, ``rows.bounded(...)``,
    ``rows.check(prediction, observed)``."""

    def __init__(self, family: str, probe: str = "") -> None:
        self.family = family
        self.probe = probe or family
        self.rows: list[CheckRow] = []
        self.topic = ""

    def add(self, test: str, quantity: str, predicted: Any, observed: Any, rule: str, *,
            exact: bool = True, bound: tuple[int, int] | None = None, reason: str = "",
            informational: bool = False) -> CheckRow:
        row = CheckRow(self.family, test, quantity, predicted, observed, rule, exact,
                       bound, judge(predicted, observed, exact, bound), reason, informational,
                       self.probe, self.topic)
        self.rows.append(row)
        return row

    @contextmanager
    def grouped(self, topic: str) -> Iterator[Rows]:
        """Rows added inside share ``topic`` (one line in the summary table)."""
        previous, self.topic = self.topic, topic
        try:
            yield self
        finally:
            self.topic = previous

    def exact(self, test: str, quantity: str, predicted: Any, observed: Any, rule: str,
              reason: str = "", informational: bool = False) -> CheckRow:
        return self.add(test, quantity, predicted, observed, rule, reason=reason,
                        informational=informational)

    def bounded(self, test: str, quantity: str, predicted: Any, lo: int, hi: int,
                observed: Any, rule: str, reason: str, informational: bool = False) -> CheckRow:
        return self.add(test, quantity, predicted, observed, rule, exact=False, bound=(lo, hi),
                        reason=reason, informational=informational)

    def check(self, test: str, quantity: str, prediction: Prediction[Any], observed: Any, *,
              informational: bool = False) -> CheckRow:
        """A row straight from a model :class:`Prediction` whose value (or bound) is on the same
        quantity as ``observed``.  An inexact prediction without a bound cannot fail honestly,
        so it becomes informational."""
        if prediction.exact:
            return self.exact(test, quantity, prediction.value, observed, prediction.rule,
                              prediction.reason, informational)
        if prediction.bound is None:
            return self.add(test, quantity, prediction.value, observed, prediction.rule,
                            exact=True, reason=prediction.reason, informational=True)
        lo, hi = prediction.bound
        return self.bounded(test, quantity, prediction.value, lo, hi, observed,
                            prediction.rule, prediction.reason, informational)
