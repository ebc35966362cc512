"""pages family: buddy blocks of orders 0..max_order for each GFP zone mask."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import gfp as gfp_mod
from kmodlab.modules import limits
from kmodlab.modules.params.base import MAX_ORDER, FamilyParams, gfp_field, unique

PagesGfp = Annotated[str, gfp_field(gfp_mod.ALL_FLAGS)]


class PagesParams(FamilyParams):
    family: ClassVar[str] = "pages"

    max_order: int = Field(
        default=4, ge=0, le=MAX_ORDER,
        description=f"orders 0..max_order are allocated; 0..{MAX_ORDER} (the kernel's maximum)",
    )
    gfp: list[PagesGfp] = Field(
        default=["GFP_KERNEL", "GFP_KERNEL|GFP_DMA32", "GFP_KERNEL|GFP_DMA"],
        min_length=1,
        max_length=8,
        description="1..8 GFP expressions joined with '|' from: " + ", ".join(sorted(gfp_mod.ALL_FLAGS)),
    )
    apis: list[Literal["get_free_pages", "alloc_pages"]] = Field(
        default=["get_free_pages", "alloc_pages"], min_length=1,
        description="__get_free_pages and/or alloc_pages",
    )
    zeroed_page: bool = Field(default=True, description="also test get_zeroed_page()")

    @model_validator(mode="after")
    def _check(self) -> PagesParams:
        unique([gfp_mod.parse_gfp(g).tag for g in self.gfp], "gfp")
        unique(self.apis, "apis")
        return self

    def held_bytes(self) -> int:
        per_set = sum(4096 << order for order in range(self.max_order + 1))
        return per_set * len(self.gfp) * len(self.apis) + 4096

    def check_kernel(self, kernel: Kernel) -> None:
        top = limits.max_page_order(kernel)
        if self.max_order > top:
            self.refuse("max_order", f"{self.max_order} is beyond {kernel.release}'s maximum order {top} (allowed 0..{top})")

    def template_context(self) -> dict[str, Any]:
        blocks = []
        for api in self.apis:
            for expr in self.gfp:
                g = gfp_mod.parse_gfp(expr)
                for order in range(self.max_order + 1):
                    blocks.append({
                        "name": f"{api}_{g.tag}_o{order}",
                        "api": api,
                        "gfp_name": g.name,
                        "gfp_expr": g.c_expr,
                        "order": order,
                    })
        return {"blocks": blocks, "max_order": self.max_order, "zeroed_page": self.zeroed_page}
