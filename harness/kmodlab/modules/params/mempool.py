"""mempool family: slab-, kmalloc- and page-backed pools and their min_nr reserve."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import limits
from kmodlab.modules.params.base import MAX_ORDER, FamilyParams, unique

PoolKind = Literal["slab", "kmalloc", "page"]
ELEMENT_SIZE_MAX = 1 << 16


class MempoolParams(FamilyParams):
    family: ClassVar[str] = "mempool"

    kinds: list[PoolKind] = Field(
        default=["slab", "kmalloc", "page"], min_length=1,
        description="distinct pool kinds from: slab, kmalloc, page",
    )
    min_nr: int = Field(default=4, ge=1, le=1024, description="reserve size, 1..1024")
    extra: int = Field(default=4, ge=0, le=4096,
                       description="elements allocated beyond min_nr, 0..4096")
    resize_to: int = Field(default=8, ge=1, le=1024,
                           description="min_nr after mempool_resize, 1..1024")
    element_size: int = Field(default=256, ge=1, le=ELEMENT_SIZE_MAX,
                              description=f"slab/kmalloc element size, 1..{ELEMENT_SIZE_MAX}")
    page_order: int = Field(default=0, ge=0, le=MAX_ORDER,
                            description=f"page pool element order, 0..{MAX_ORDER} (kernel max)")

    @model_validator(mode="after")
    def _check(self) -> MempoolParams:
        unique(self.kinds, "kinds")
        return self

    def held_bytes(self) -> int:
        # Elements alive at the peak: allocated + drained + the resized reserve.
        elements = self.min_nr + self.extra + self.min_nr + max(self.min_nr, self.resize_to)
        per_kind = {"slab": self.element_size, "kmalloc": self.element_size,
                    "page": 4096 << self.page_order}
        return sum(elements * per_kind[k] for k in self.kinds)

    def check_kernel(self, kernel: Kernel) -> None:
        top = limits.max_page_order(kernel)
        if self.page_order > top:
            self.refuse("page_order", f"{self.page_order} is beyond {kernel.release}'s maximum order {top} (allowed 0..{top})")
