"""dma family: coherent DMA buffers for a real PCI device (the guest's ivshmem), allocated by
hand (dma_alloc_coherent) and device-managed (dmam_alloc_coherent, released by devres)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kmodlab.modules.params.base import FamilyParams, unique

DMA_SIZE_MAX = 4 << 20
"""One buffer: beyond 4 MiB the buddy path needs orders above Debian's MAX_ORDER on 4K pages."""
API = Literal["dma_alloc_coherent", "dmam_alloc_coherent"]


class DmaParams(FamilyParams):
    family: ClassVar[str] = "dma"

    sizes: list[Annotated[int, Field(ge=1, le=DMA_SIZE_MAX)]] = Field(
        # under a page, 3 pages (order 2: 4 from the buddy allocator), 66 pages (order 7: 128)
        default=[100, 10000, 270000], min_length=1, max_length=16,
        description=f"1..16 distinct buffer sizes in bytes, each 1..{DMA_SIZE_MAX}")
    apis: list[API] = Field(
        default=["dma_alloc_coherent", "dmam_alloc_coherent"], min_length=1,
        description="dma_alloc_coherent and/or dmam_alloc_coherent (device-managed)")
    mask_bits: int = Field(
        default=32, ge=24, le=64,
        description="dma_set_mask_and_coherent(DMA_BIT_MASK(n)), 24..64; 32 is what a PCI "
                    "device has before its driver sets one")

    @model_validator(mode="after")
    def _check(self) -> DmaParams:
        unique(self.sizes, "sizes")
        unique(self.apis, "apis")
        return self

    def buffers(self) -> list[dict[str, Any]]:
        return [{"name": f"{api}_{size}", "managed": api == "dmam_alloc_coherent",
                 "size": size} for api in self.apis for size in self.sizes]

    def held_bytes(self) -> int:
        return sum(self.sizes) * len(self.apis)

    def template_context(self) -> dict[str, Any]:
        return {"buffers": self.buffers(), "mask_bits": self.mask_bits}
