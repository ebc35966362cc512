"""devres family: a platform driver whose probe allocates with devm_*."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import limits
from kmodlab.modules.params.base import KMALLOC_MAX, MAX_ORDER, FamilyParams, unique

DEVM_MAX = KMALLOC_MAX // 2
"""devres puts a header in front of the data, so KMALLOC_MAX_SIZE itself cannot be asked for."""
DevmSize = Annotated[int, Field(ge=1, le=DEVM_MAX)]


class DevresParams(FamilyParams):
    family: ClassVar[str] = "devres"

    kmalloc_sizes: list[DevmSize] = Field(
        default=[64], max_length=32,
        description=f"0..32 distinct devm_kmalloc sizes, each 1..{DEVM_MAX}",
    )
    kzalloc_sizes: list[DevmSize] = Field(
        default=[100, 4000], max_length=32,
        description=f"0..32 distinct devm_kzalloc sizes, each 1..{DEVM_MAX}",
    )
    page_order: int | None = Field(
        default=0, ge=0, le=MAX_ORDER,
        description=f"devm_get_free_pages order 0..{MAX_ORDER}, or none to skip it",
    )

    @model_validator(mode="after")
    def _check(self) -> DevresParams:
        unique(self.kmalloc_sizes, "kmalloc_sizes")
        unique(self.kzalloc_sizes, "kzalloc_sizes")
        if not self.kmalloc_sizes and not self.kzalloc_sizes:
            raise ValueError("parameters 'kmalloc_sizes' and 'kzalloc_sizes' are both empty; give at least one size")
        return self

    def held_bytes(self) -> int:
        pages = 0 if self.page_order is None else 4096 << self.page_order
        return sum(self.kmalloc_sizes) + sum(self.kzalloc_sizes) + pages

    def check_kernel(self, kernel: Kernel) -> None:
        top = limits.max_page_order(kernel)
        if self.page_order is not None and self.page_order > top:
            self.refuse("page_order", f"{self.page_order} is beyond {kernel.release}'s maximum order {top} (allowed 0..{top})")
        big = limits.kmalloc_max_size(kernel) // 2
        for name in ("kmalloc_sizes", "kzalloc_sizes"):
            for size in getattr(self, name):
                if size > big:
                    self.refuse(name, f"{size} exceeds KMALLOC_MAX_SIZE/2={big} (devres adds a header)")
