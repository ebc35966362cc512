"""vmalloc family: virtually contiguous areas built from scattered pages."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import limits
from kmodlab.modules.params.base import KMALLOC_MAX, FamilyParams, SizeInt, unique

VMALLOC_SIZE_MAX = 128 << 20


class VmallocParams(FamilyParams):
    family: ClassVar[str] = "vmalloc"

    sizes: list[Annotated[int, Field(ge=1, le=VMALLOC_SIZE_MAX)]] = Field(
        # 8 MiB is beyond KMALLOC_MAX_SIZE: only vmalloc can provide it.
        default=[4096, 10000, 65536, 3 << 20, 8 << 20],
        min_length=1,
        max_length=32,
        description=f"1..32 distinct sizes in bytes, each 1..{VMALLOC_SIZE_MAX}",
    )
    apis: list[Literal["vmalloc", "vzalloc"]] = Field(
        default=["vmalloc", "vzalloc"], min_length=1, description="vmalloc and/or vzalloc"
    )
    kmalloc_size: SizeInt = Field(
        default=65536,
        description=f"kmalloc buffer checked for physical contiguity, 1..{KMALLOC_MAX}",
    )

    @model_validator(mode="after")
    def _check(self) -> VmallocParams:
        unique(self.sizes, "sizes")
        unique(self.apis, "apis")
        return self

    def held_bytes(self) -> int:
        return sum(self.sizes) * len(self.apis) + self.kmalloc_size

    def check_kernel(self, kernel: Kernel) -> None:
        top = limits.kmalloc_max_size(kernel)
        if self.kmalloc_size > top:
            self.refuse("kmalloc_size", f"{self.kmalloc_size} exceeds KMALLOC_MAX_SIZE={top}")

    def template_context(self) -> dict[str, Any]:
        areas = [
            {"name": f"{api}_{size}", "api": api, "size": size, "zero": api == "vzalloc"}
            for api in self.apis
            for size in self.sizes
        ]
        return {"areas": areas, "kmalloc_size": self.kmalloc_size}
