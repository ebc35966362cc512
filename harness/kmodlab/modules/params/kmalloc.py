"""kmalloc family: kmalloc/kzalloc over sizes x GFP masks, plus krealloc and kvmalloc."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field, model_validator

from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import gfp as gfp_mod
from kmodlab.modules import limits
from kmodlab.modules.params.base import KMALLOC_MAX, FamilyParams, SizeInt, gfp_field, unique

# GFP_DMA32 and __GFP_HIGHMEM are in GFP_SLAB_BUG_MASK: kmalloc warns and strips them.
KMALLOC_GFP = gfp_mod.ALL_FLAGS - gfp_mod.SLAB_BUG_FLAGS
KmallocGfp = Annotated[str, gfp_field(KMALLOC_GFP)]
KVMALLOC_MAX = 64 << 20

MAX_SLOTS = 100_000
"""Object pointers the module keeps in a static array (800 KB of module .bss at most)."""


class KmallocParams(FamilyParams):
    family: ClassVar[str] = "kmalloc"

    sizes: list[SizeInt] = Field(
        default=[8, 64, 96, 160, 256, 1000, 4096, 8192, 8193, 65536],
        min_length=1,
        max_length=64,
        description=f"1..64 distinct sizes in bytes, each 1..{KMALLOC_MAX} (KMALLOC_MAX_SIZE)",
    )
    gfp: list[KmallocGfp] = Field(
        default=["GFP_KERNEL", "GFP_ATOMIC", "GFP_KERNEL_ACCOUNT", "GFP_KERNEL|GFP_DMA"],
        min_length=1,
        max_length=16,
        description="1..16 GFP expressions joined with '|' from: "
        + ", ".join(sorted(KMALLOC_GFP)),
    )
    zero: bool = Field(default=False, description="true: kzalloc (and check zeroing) instead of kmalloc")
    count: int = Field(default=1, ge=1, le=10_000, description="objects held per (size, gfp): 1..10000")
    krealloc: list[SizeInt] = Field(
        default=[64, 100, 200, 5000, 10000],
        max_length=32,
        description=f"empty, or 2..32 distinct sizes (1..{KMALLOC_MAX}) one object is krealloc'ed through",
    )
    kvmalloc_sizes: list[Annotated[int, Field(ge=1, le=KVMALLOC_MAX)]] = Field(
        default=[65536, 8 << 20],
        max_length=16,
        description=f"0..16 distinct sizes for kvmalloc, each 1..{KVMALLOC_MAX}",
    )

    @model_validator(mode="after")
    def _check(self) -> KmallocParams:
        unique(self.sizes, "sizes")
        unique([gfp_mod.parse_gfp(g).tag for g in self.gfp], "gfp")
        unique(self.krealloc, "krealloc")
        unique(self.kvmalloc_sizes, "kvmalloc_sizes")
        if len(self.krealloc) == 1:
            raise ValueError("parameter 'krealloc' needs 0 or at least 2 sizes (from, to, ...)")
        slots = len(self.sizes) * len(self.gfp) * self.count
        if slots > MAX_SLOTS:
            raise ValueError(
                f"sizes x gfp x count = {slots} objects; at most {MAX_SLOTS}: lower 'count'"
            )
        return self

    def held_bytes(self) -> int:
        return (
            sum(self.sizes) * len(self.gfp) * self.count
            + max(self.krealloc, default=0)
            + sum(self.kvmalloc_sizes)
        )

    def check_kernel(self, kernel: Kernel) -> None:
        top = limits.kmalloc_max_size(kernel)
        for name in ("sizes", "krealloc"):
            for size in getattr(self, name):
                if size > top:
                    self.refuse(name, f"{size} exceeds KMALLOC_MAX_SIZE={top} of {kernel.release}")

    def template_context(self) -> dict[str, Any]:
        api = "kzalloc" if self.zero else "kmalloc"
        requests = []
        for size in self.sizes:
            for expr in self.gfp:
                g = gfp_mod.parse_gfp(expr)
                requests.append(
                    {
                        "name": f"{api}_{size}_{g.tag}",
                        "gfp_name": g.name,
                        "gfp_expr": g.c_expr,
                        "size": size,
                        "zero": self.zero,
                    }
                )
        return {
            "requests": requests,
            "count": self.count,
            "krealloc": self.krealloc,
            "kvmalloc_sizes": self.kvmalloc_sizes,
        }
