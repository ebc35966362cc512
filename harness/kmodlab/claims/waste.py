"""kmalloc's internal waste by requested size: the data behind ``kmodlab chart waste``.

Waste is ``ksize(kmalloc(n)) - n`` bytes, and as a percentage of the allocated slot (the share
of the memory taken that nobody asked for), from the model (:meth:`Model.kmalloc_waste`) for
every n in 1..8192, one series per kernel; measured points are the kmalloc family's ksize for
the sizes the claims probe swept, each compared with the model.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kmodlab.claims.judges import measured_ksizes
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget

MAX_SIZE = 8192


@dataclass(frozen=True)
class WasteSeries:
    """Model waste for sizes 1..N on one kernel."""

    label: str                      # "arm64 6.1"
    config: str                     # "kernel .config" or "Debian defaults"
    sizes: tuple[int, ...]
    allocated: tuple[int, ...]      # ksize of each size

    @property
    def waste_bytes(self) -> tuple[int, ...]:
        return tuple(a - n for n, a in zip(self.sizes, self.allocated, strict=True))

    @property
    def waste_percent(self) -> tuple[float, ...]:
        return tuple(100.0 * (a - n) / a if a else 0.0
                     for n, a in zip(self.sizes, self.allocated, strict=True))


@dataclass(frozen=True)
class MeasuredPoint:
    label: str
    size: int
    ksize: int              # measured
    model_ksize: int

    @property
    def agrees(self) -> bool:
        return self.ksize == self.model_ksize

    @property
    def waste_bytes(self) -> int:
        return self.ksize - self.size

    @property
    def waste_percent(self) -> float:
        return 100.0 * (self.ksize - self.size) / self.ksize if self.ksize else 0.0


def _label(target: ModelTarget) -> str:
    return f"{target.arch} {target.series}"


def waste_series(target: ModelTarget, sizes: Iterable[int] = range(1, MAX_SIZE + 1)
                 ) -> WasteSeries:
    m = target.model
    ns = tuple(sizes)
    return WasteSeries(_label(target), target.config_source, ns,
                       tuple(m.kmalloc_waste(n).value.allocated for n in ns))


def measured_points(target: ModelTarget, obs: Observations, max_size: int = MAX_SIZE
                    ) -> list[MeasuredPoint]:
    """The kmalloc sweep's measured ksize values up to ``max_size``, with the model's."""
    m = target.model
    return [MeasuredPoint(_label(target), n, k, m.ksize(n).value)
            for n, k in sorted(measured_ksizes(obs).items()) if n <= max_size]


def same_as(series: Sequence[WasteSeries]) -> dict[str, str]:
    """{label: earlier label} for every series identical to an earlier one (to say so in the
    legend instead of hiding a line under another)."""
    out: dict[str, str] = {}
    for i, s in enumerate(series):
        for earlier in series[:i]:
            if earlier.allocated == s.allocated and earlier.sizes == s.sizes:
                out[s.label] = out.get(earlier.label, earlier.label)
                break
    return out


def smallest_slots(series: Sequence[WasteSeries]) -> str:
    """Which kernels' smallest kmalloc slot (ksize(1), KMALLOC_MIN_SIZE) is what, in words:
    "8 bytes on x86_64 5.10, ...; 128 on arm64 5.10, arm64 6.1" (the chart's subtitle)."""
    by_slot: dict[int, list[str]] = {}
    for s in series:
        if s.sizes and s.sizes[0] == 1:
            by_slot.setdefault(s.allocated[0], []).append(s.label)
    return "; ".join(f"{slot} B on {', '.join(labels)}" for slot, labels in sorted(by_slot.items()))


def to_csv(series: Sequence[WasteSeries]) -> str:
    """size, then waste bytes and percent per series: the chart as a table."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["size"] + [f"{s.label} {what}" for s in series
                                for what in ("ksize", "waste_bytes", "waste_percent")])
    columns = [(s.allocated, s.waste_bytes, s.waste_percent) for s in series]
    for i, n in enumerate(series[0].sizes if series else ()):
        row: list[object] = [n]
        for allocated, waste, percent in columns:
            row += [allocated[i], waste[i], f"{percent[i]:.2f}"]
        writer.writerow(row)
    return buf.getvalue()
