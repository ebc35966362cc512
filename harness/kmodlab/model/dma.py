"""Coherent DMA buffers as dma-direct hands them out (no IOMMU: kmodlab's guests have none).

Rules (kernel/dma/direct.c, the same from 5.10 to 7.2): dma_direct_alloc() ->
__dma_direct_alloc_pages(): the size is page-aligned, dma_direct_optimal_gfp_mask() adds GFP_DMA
or GFP_DMA32 for the device's coherent mask, dma_alloc_contiguous() (kernel/dma/contiguous.c)
takes the buffer from the default CMA area when there is one, the context may sleep and the
buffer is larger than a page (cma_alloc_aligned(): exactly size >> PAGE_SHIFT pages, aligned to
min(get_order(size), CONFIG_CMA_ALIGNMENT)); otherwise alloc_pages_node(get_order(size)): a
whole power-of-two block.  The buffer is zeroed either way, and its bus address is its physical
address (dma-direct's phys_to_dma() without an offset).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kmodlab.model.errors import ModelError
from kmodlab.model.pages import get_order
from kmodlab.model.params import KernelParams

_MEMPARSE = re.compile(r"^(\d+)([kmgtpeKMGTPE]?)")
_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def cma_bytes(p: KernelParams, cmdline: str = "") -> int | None:
    """Size of the default CMA area: ``cma=`` on the command line (kernel/dma/contiguous.c:
    early_cma(), memparse()), else CONFIG_CMA_SIZE_MBYTES; None without CONFIG_DMA_CMA (then
    ``cma=`` is not a parameter at all)."""
    if p.dma_cma_mbytes is None:
        return None
    size = p.dma_cma_mbytes << 20
    for word in cmdline.split():
        if word.startswith("cma="):
            m = _MEMPARSE.match(word[4:])
            if m is None:
                raise ModelError(f"cannot read {word!r} as early_cma() would")
            size = int(m[1]) << _SHIFT[m[2].lower()]
    return size


def zone_modifier(p: KernelParams, mask_bits: int) -> str:
    """The zone flag dma_direct_optimal_gfp_mask() adds for a coherent mask of ``mask_bits``."""
    if mask_bits <= p.zone_dma_bits:
        return "GFP_DMA"
    if mask_bits <= 32:
        return "GFP_DMA32"
    return ""


@dataclass(frozen=True)
class DmaCoherentPlan:
    size: int
    gfp_zone: str          # "GFP_DMA", "GFP_DMA32" or "" (dma-direct's zone flag)
    from_cma: bool
    pages: int             # what the buffer takes: exact pages from CMA, 2^order from the buddy
    order: int             # get_order(size)
    align_pages: int       # its first pfn is a multiple of this

    @property
    def gfp(self) -> str:
        return f"GFP_KERNEL|{self.gfp_zone}" if self.gfp_zone else "GFP_KERNEL"


def coherent_plan(p: KernelParams, size: int, mask_bits: int = 32,
                  cmdline: str = "") -> DmaCoherentPlan:
    page = p.page_size
    order = get_order(size, p.page_shift)
    area = cma_bytes(p, cmdline) or 0
    from_cma = area > 0 and size > page
    if from_cma and mask_bits < 32:
        raise ModelError(f"a {mask_bits}-bit mask with a CMA area: dma_coherent_ok() rejects "
                         "CMA pages above the mask and the model does not place the area; "
                         "only masks of 32 bits and more are covered with CMA")
    if from_cma:
        pages = -(-size // page)
        align = 1 << min(order, p.cma_alignment)
    else:
        pages = align = 1 << order
    return DmaCoherentPlan(size, zone_modifier(p, mask_bits), from_cma, pages, order, align)
