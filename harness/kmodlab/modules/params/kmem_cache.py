"""kmem_cache family: one named slab cache and `count` objects held in it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from kmodlab.kernels.kernel import Kernel
from kmodlab.model import tables
from kmodlab.modules import gfp as gfp_mod
from kmodlab.modules.params.base import FamilyParams, PowerOfTwo, gfp_field, unique

SlabFlag = Literal[
    "SLAB_HWCACHE_ALIGN",
    "SLAB_ACCOUNT",
    "SLAB_NO_MERGE",  # tables.SINCE["SLAB_NO_MERGE"]; check_kernel() refuses it on older kernels
    "SLAB_NOLEAKTRACE",
    "SLAB_RECLAIM_ACCOUNT",
    "SLAB_CACHE_DMA",
    "SLAB_CACHE_DMA32",
    "SLAB_TYPESAFE_BY_RCU",
    # SLUB debug flags (CONFIG_SLUB_DEBUG=y in Debian); they change the object layout.
    "SLAB_POISON",
    "SLAB_RED_ZONE",
    "SLAB_STORE_USER",
]
OBJECT_SIZE_MAX = 1 << 20

# kmem_cache_alloc takes the zone from the cache's flags, so only plain masks are offered.
CACHE_GFP = (gfp_mod.BASE_MASKS - gfp_mod.SLAB_BUG_FLAGS) | {"__GFP_NOWARN", "__GFP_ZERO"}


class KmemCacheParams(FamilyParams):
    family: ClassVar[str] = "kmem_cache"

    name: str = Field(
        default="kml_cache",
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="cache name: a lower-case C identifier of 1..32 characters",
    )
    size: int = Field(default=100, ge=1, le=OBJECT_SIZE_MAX,
                      description=f"object size in bytes, 1..{OBJECT_SIZE_MAX}")
    align: Annotated[int, PowerOfTwo] = Field(
        default=0, ge=0, le=4096, description="0 (default) or a power of two up to 4096"
    )
    flags: list[SlabFlag] = Field(
        default=["SLAB_HWCACHE_ALIGN", "SLAB_NOLEAKTRACE"],
        description="distinct flags from: " + ", ".join(SlabFlag.__args__),
    )
    ctor: bool = Field(default=False, description="true: give the cache a constructor")
    count: int = Field(default=100, ge=1, le=100_000, description="objects held, 1..100000")
    gfp: Annotated[str, gfp_field(CACHE_GFP)] = Field(
        default="GFP_KERNEL", description="one of: " + ", ".join(sorted(CACHE_GFP))
    )

    @model_validator(mode="after")
    def _check(self) -> KmemCacheParams:
        unique(self.flags, "flags")
        if "SLAB_CACHE_DMA" in self.flags and "SLAB_CACHE_DMA32" in self.flags:
            raise ValueError("parameter 'flags': SLAB_CACHE_DMA and SLAB_CACHE_DMA32 exclude each other")
        return self

    def held_bytes(self) -> int:
        return self.size * self.count

    def check_kernel(self, kernel: Kernel) -> None:
        if "SLAB_NO_MERGE" in self.flags and not tables.since("SLAB_NO_MERGE", kernel.version):
            major, minor = tables.SINCE["SLAB_NO_MERGE"].release
            self.refuse(
                "flags",
                f"SLAB_NO_MERGE exists from Linux {major}.{minor}; {kernel.release} is older. "
                "SLAB_NOLEAKTRACE also keeps a cache unmerged without changing its layout",
            )

    def template_context(self) -> dict[str, Any]:
        g = gfp_mod.parse_gfp(self.gfp)
        return {
            "cache_name": self.name,
            "size": self.size,
            "align": self.align,
            "flags_expr": " | ".join(self.flags) or "0",
            "flags_name": "|".join(self.flags) or "none",
            "ctor": self.ctor,
            "no_merge": "SLAB_NO_MERGE" in self.flags,
            "count": self.count,
            "gfp_expr": g.c_expr,
            "gfp_name": g.name,
        }
