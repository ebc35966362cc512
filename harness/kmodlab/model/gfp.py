"""GFP flag expressions ("GFP_KERNEL | __GFP_ZERO") as sets of basic flags.

Only the meaning matters to the model (which kmalloc family, which zone, which migratetype),
so flags are names, not the kernel's bit values (those change between versions).
Source: include/linux/gfp_types.h (6.1: include/linux/gfp.h).
"""

from __future__ import annotations

import re

from kmodlab.model.errors import ModelError

BASIC = frozenset({
    "__GFP_DMA", "__GFP_HIGHMEM", "__GFP_DMA32", "__GFP_MOVABLE", "__GFP_RECLAIMABLE",
    "__GFP_HIGH", "__GFP_IO", "__GFP_FS", "__GFP_ZERO", "__GFP_DIRECT_RECLAIM",
    "__GFP_KSWAPD_RECLAIM", "__GFP_WRITE", "__GFP_NOWARN", "__GFP_RETRY_MAYFAIL",
    "__GFP_NOFAIL", "__GFP_NORETRY", "__GFP_MEMALLOC", "__GFP_COMP", "__GFP_NOMEMALLOC",
    "__GFP_HARDWALL", "__GFP_THISNODE", "__GFP_ACCOUNT", "__GFP_NOLOCKDEP",
})
_RECLAIM = frozenset({"__GFP_DIRECT_RECLAIM", "__GFP_KSWAPD_RECLAIM"})
COMPOSITE: dict[str, frozenset[str]] = {
    "__GFP_RECLAIM": _RECLAIM,
    "GFP_KERNEL": _RECLAIM | {"__GFP_IO", "__GFP_FS"},
    "GFP_KERNEL_ACCOUNT": _RECLAIM | {"__GFP_IO", "__GFP_FS", "__GFP_ACCOUNT"},
    "GFP_ATOMIC": frozenset({"__GFP_HIGH", "__GFP_KSWAPD_RECLAIM"}),
    # Debian's 6.12 and 7.2 headers add __GFP_NOWARN here (gfp_types.h, a change 6.12.y took
    # from mainline); whether a failure warns is not something the model answers, so the
    # older definition serves every series.
    "GFP_NOWAIT": frozenset({"__GFP_KSWAPD_RECLAIM"}),
    "GFP_NOIO": _RECLAIM,
    "GFP_NOFS": _RECLAIM | {"__GFP_IO"},
    "GFP_USER": _RECLAIM | {"__GFP_IO", "__GFP_FS", "__GFP_HARDWALL"},
    "GFP_DMA": frozenset({"__GFP_DMA"}),
    "GFP_DMA32": frozenset({"__GFP_DMA32"}),
    "GFP_HIGHUSER": _RECLAIM | {"__GFP_IO", "__GFP_FS", "__GFP_HARDWALL", "__GFP_HIGHMEM"},
    "GFP_HIGHUSER_MOVABLE": _RECLAIM | {"__GFP_IO", "__GFP_FS", "__GFP_HARDWALL",
                                        "__GFP_HIGHMEM", "__GFP_MOVABLE"},
}
# mm/slab.h:GFP_SLAB_BUG_MASK: kmalloc() strips these with a warning (kmalloc_fix_flags()).
SLAB_BUG_MASK = frozenset({"__GFP_DMA32", "__GFP_HIGHMEM"})


def parse_gfp(expr: str | frozenset[str] | set[str]) -> frozenset[str]:
    """``"GFP_KERNEL | __GFP_ZERO"`` -> the set of basic flags.  ``0`` means no flags."""
    if not isinstance(expr, str):
        flags = frozenset(expr)
        unknown = flags - BASIC
        if unknown:
            raise ModelError(f"unknown GFP flags {sorted(unknown)}")
        return flags
    out: set[str] = set()
    for part in re.split(r"[|,\s]+", expr.strip()):
        if not part or part == "0":
            continue
        if part in COMPOSITE:
            out |= COMPOSITE[part]
        elif part in BASIC:
            out.add(part)
        else:
            raise ModelError(f"unknown GFP flag {part!r} in {expr!r}; known: "
                             f"{', '.join(sorted(COMPOSITE))} and the __GFP_* basics")
    return frozenset(out)


def kmalloc_type(flags: frozenset[str], *, zone_dma: bool, memcg: bool) -> str:
    """include/linux/slab.h:kmalloc_type(): NORMAL unless __GFP_DMA, __GFP_RECLAIMABLE or
    __GFP_ACCOUNT (with memcg) is set; priority DMA > RECLAIMABLE > ACCOUNT."""
    not_normal = {"__GFP_RECLAIMABLE"}
    if zone_dma:
        not_normal.add("__GFP_DMA")
    if memcg:
        not_normal.add("__GFP_ACCOUNT")
    if not flags & not_normal:
        return "normal"
    if zone_dma and "__GFP_DMA" in flags:
        return "dma"
    if not memcg or "__GFP_RECLAIMABLE" in flags:
        return "reclaim"
    return "cgroup"


def migratetype(flags: frozenset[str]) -> str:
    """include/linux/gfp.h:gfp_migratetype(): MOVABLE, RECLAIMABLE or UNMOVABLE."""
    if "__GFP_MOVABLE" in flags:
        return "MOVABLE"
    if "__GFP_RECLAIMABLE" in flags:
        return "RECLAIMABLE"
    return "UNMOVABLE"


def highest_zone(flags: frozenset[str], *, highmem: bool = False, dma32: bool = True) -> str:
    """include/linux/gfp.h:gfp_zone() (GFP_ZONE_TABLE): DMA, DMA32 or Normal, and HighMem for
    __GFP_HIGHMEM where CONFIG_HIGHMEM exists (i386); without CONFIG_ZONE_DMA32 __GFP_DMA32
    means Normal (OPT_ZONE_DMA32).  GFP_KERNEL is never HighMem."""
    if "__GFP_DMA" in flags:
        return "DMA"
    if "__GFP_DMA32" in flags:
        return "DMA32" if dma32 else "Normal"
    if "__GFP_HIGHMEM" in flags and highmem:
        return "HighMem"
    return "Normal"
