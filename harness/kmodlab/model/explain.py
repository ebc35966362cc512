"""Plain-words account of where a kmalloc() goes and why (which rule, which table entry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kmodlab.model import gfp, kmalloc
from kmodlab.model.pages import get_order

if TYPE_CHECKING:
    from kmodlab.model.model import Model


def explain_kmalloc(model: Model, size: int, gfp_flags: str = "GFP_KERNEL") -> str:
    p = model.params
    head = f"kmalloc({size}, {gfp_flags}) on {p.arch} {p.series}"
    if size == 0:
        return (f"{head}: size 0 returns ZERO_SIZE_PTR ((void *){p.zero_size_ptr}) without "
                "using any cache; ksize() of it is 0 (include/linux/slab.h).")
    lines = [head + ":"]
    flags = gfp.parse_gfp(gfp_flags)
    stripped = flags & gfp.SLAB_BUG_MASK
    if stripped:
        lines.append(f"- {', '.join(sorted(stripped))} is in GFP_SLAB_BUG_MASK: kmalloc_fix_flags()"
                     " prints 'Unexpected gfp' with a stack dump and drops it.")
    if size > p.kmalloc_max_cache_size:
        order = get_order(size, p.page_shift)
        lines.append(f"- {size} > KMALLOC_MAX_CACHE_SIZE ({p.kmalloc_max_cache_size} = "
                     f"2 * PAGE_SIZE), so no slab cache: {p.rule_kmalloc_large} calls "
                     f"alloc_pages(gfp | __GFP_COMP, get_order({size}) = {order}).")
        if order > p.max_page_order:
            lines.append(f"- order {order} exceeds {p.max_order_name}: __alloc_pages() warns "
                         "(unless __GFP_NOWARN) and kmalloc returns NULL.")
            return "\n".join(lines)
        alloc = p.page_size << order
        lines.append(f"- The block is {1 << order} page(s) = {alloc} bytes; ksize() reports "
                     f"folio_size() = {alloc}, {alloc - size} bytes "
                     f"({100 * (alloc - size) / alloc:.1f}%) more than asked.  It is counted in "
                     "/proc/meminfo Slab/SUnreclaim, not in /proc/slabinfo.")
        return "\n".join(lines)
    ktype = model.kmalloc_type(gfp_flags)
    index = kmalloc.kmalloc_index(p, size)
    if size <= 192:
        elem = (size - 1) // 8
        patched = kmalloc.size_index_table(p)[elem] != kmalloc.SIZE_INDEX[elem]
        note = (f" (patched by setup_kmalloc_cache_index_table() because KMALLOC_MIN_SIZE is "
                f"{p.kmalloc_min_size})" if patched else "")
        lines.append(f"- {size} <= 192, so {p.rule_kmalloc_slab.split(' + ')[0]} looks up "
                     f"size_index[({size} - 1) / 8 = {elem}] = {index}{note}.")
    else:
        lines.append(f"- {size} > 192, so the index is fls({size} - 1) = {index} (next power "
                     "of two).")
    info_size = kmalloc.kmalloc_info_size(index)
    lines.append(f"- kmalloc_info[{index}] is the {info_size}-byte class.")
    cache = kmalloc.kmalloc_slab(p, size, ktype)
    if cache.object_size != info_size:
        lines.append(f"- new_kmalloc_cache() rounded that class up to the runtime minimum "
                     f"alignment {p.kmalloc_minalign} (__kmalloc_minalign()), so the index "
                     f"shares {cache.name}.")
    why = {
        "normal": "no __GFP_DMA, __GFP_RECLAIMABLE or __GFP_ACCOUNT",
        "reclaim": "__GFP_RECLAIMABLE",
        "cgroup": "__GFP_ACCOUNT (memcg accounting)",
        "dma": "__GFP_DMA",
    }[ktype]
    lines.append(f"- kmalloc_type() picks the {ktype.upper()} family ({why}): cache "
                 f"{cache.name}.")
    ksize = model.ksize(size, gfp_flags)
    waste = ksize.value - size
    lines.append(f"- Its slot (s->size) is {cache.size} bytes, so ksize() = {ksize.value}: "
                 f"{waste} bytes ({100 * waste / ksize.value:.1f}%) unused.")
    g = cache.geometry
    lines.append(f"- The cache packs {g.objects} objects per order-{g.order} slab "
                 f"({g.pages} page(s)) with {p.ncpus} CPU(s) (mm/slub.c:calculate_order()).")
    if ktype == "normal" and p.random_kmalloc:
        lines.append("- RANDOM_KMALLOC_CACHES is on: the call site may use one of the "
                     "kmalloc-rnd-NN copies instead.")
    return "\n".join(lines)
