"""What every model function returns: a value, how sure the model is, and the rule behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Prediction(Generic[T]):
    """A predicted value.

    ``exact`` predictions must match an observation; otherwise ``bound`` = (lo, hi) gives the
    accepted range of the observed number (for composite values, of the quantity the ``reason``
    names) and ``reason`` says why the kernel is not deterministic here.  ``rule`` cites the
    kernel code: ``"file:function() + table"``.
    """

    value: T
    rule: str
    exact: bool = True
    bound: tuple[int, int] | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.exact and self.bound is None and not self.reason:
            raise ValueError("an inexact prediction needs a bound or a reason")
        if self.bound is not None and self.bound[0] > self.bound[1]:
            raise ValueError(f"empty bound {self.bound}")

    def accepts(self, observed: Any) -> bool:
        """Whether an observation agrees: equality if exact, else within the bound."""
        if self.exact or self.bound is None:
            return bool(observed == self.value)
        lo, hi = self.bound
        return bool(lo <= observed <= hi)

    def __str__(self) -> str:
        how = "exact" if self.exact else f"bound {self.bound}" if self.bound else "approximate"
        extra = f"; {self.reason}" if self.reason else ""
        return f"{self.value!r} ({how}; {self.rule}{extra})"


def exact(value: T, rule: str, reason: str = "") -> Prediction[T]:
    return Prediction(value, rule, True, None, reason)


def bounded(value: T, lo: int, hi: int, rule: str, reason: str) -> Prediction[T]:
    return Prediction(value, rule, False, (lo, hi), reason)
