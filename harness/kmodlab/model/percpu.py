"""Per-CPU allocations (mm/percpu.c:pcpu_alloc()).

One copy per *possible* CPU (for_each_possible_cpu() iterates cpu_possible_mask), zeroed;
sizes round up to PCPU_MIN_ALLOC_SIZE (4) and alignment is at least 4.  Sizes above
PCPU_MIN_UNIT_SIZE (32 KiB), alignments above PAGE_SIZE or not a power of two make pcpu_alloc()
WARN "illegal size (%zu) or align (%zu) for percpu allocation" and return NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmodlab.model.params import KernelParams


@dataclass(frozen=True)
class PercpuAlloc:
    size: int          # bytes per CPU after rounding
    align: int
    copies: int        # possible CPUs
    valid: bool
    reason: str = ""

    @property
    def total_bytes(self) -> int:
        return self.size * self.copies if self.valid else 0


def percpu_alloc(p: KernelParams, size: int, align: int | None = None) -> PercpuAlloc:
    """alloc_percpu(type) is __alloc_percpu(sizeof(type), __alignof__(type))."""
    if align is None:
        # __alignof__ of a type that size: a power of two dividing the size, at most 8 (the
        # largest scalar alignment on x86_64 and arm64), e.g. 4 for 12 bytes, 1 for char[5].
        align = min(size & -size, 8) if size > 0 else 1
    align = max(align, p.pcpu_min_alloc_size)
    rounded = -(-size // p.pcpu_min_alloc_size) * p.pcpu_min_alloc_size
    problems = []
    if rounded == 0:
        problems.append("size is 0")
    if rounded > p.pcpu_min_unit_size:
        problems.append(f"size {rounded} > PCPU_MIN_UNIT_SIZE {p.pcpu_min_unit_size}")
    if align > p.page_size:
        problems.append(f"align {align} > PAGE_SIZE")
    if align & (align - 1):
        problems.append(f"align {align} is not a power of two")
    return PercpuAlloc(rounded, align, p.ncpus, not problems, "; ".join(problems))


def percpu_sum(values_per_cpu: list[int]) -> int:
    """What a percpu counter reads as: the sum over possible CPUs (per_cpu_ptr() of each)."""
    return sum(values_per_cpu)
