"""percpu family: DEFINE_PER_CPU and alloc_percpu counters, and __alloc_percpu areas."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from kmodlab.modules.params.base import FamilyParams, PowerOfTwo, unique

PCPU_MIN_UNIT_SIZE = 32 << 10
"""mm/percpu.c refuses (WARN + NULL) sizes above this."""

ASSUMED_MAX_CPUS = 64


class PercpuParams(FamilyParams):
    family: ClassVar[str] = "percpu"

    increments: int = Field(default=1, ge=1, le=1_000_000,
                            description="added to each CPU's counters, 1..1000000")
    sizes: list[Annotated[int, Field(ge=1, le=PCPU_MIN_UNIT_SIZE)]] = Field(
        default=[4, 64, 1024],
        min_length=1,
        max_length=32,
        description=f"1..32 distinct __alloc_percpu sizes, each 1..{PCPU_MIN_UNIT_SIZE} (PCPU_MIN_UNIT_SIZE)",
    )
    align: Annotated[int, PowerOfTwo] = Field(
        default=8, ge=1, le=4096, description="a power of two, 1..4096 (PAGE_SIZE)"
    )

    @model_validator(mode="after")
    def _check(self) -> PercpuParams:
        unique(self.sizes, "sizes")
        return self

    def held_bytes(self) -> int:
        return sum(self.sizes) * ASSUMED_MAX_CPUS
