"""Plain-words answers (``kmodlab explain``): the model's reasoning for one kernel, then what
the other kernels the model covers do with the same request, and why they differ.

The per-kernel walk-through for kmalloc is the model's own
(:func:`kmodlab.model.explain.explain_kmalloc`); this module adds the header (which config),
the reason behind a patched size table, and the cross-kernel comparison, whose reasons are read
from the parameters that differ, each with the source the model's table cites.
"""

from __future__ import annotations

from kmodlab.claims.target import ModelTarget, all_targets
from kmodlab.model import kmalloc as km
from kmodlab.model import slab, tables
from kmodlab.model.params import KernelParams


def _header(target: ModelTarget, what: str) -> str:
    where = f"{target.release}'s .config" if target.kernel else "Debian's default config"
    return f"{what} on {target.arch} {target.series} ({where}, {target.model.ncpus} CPU(s))"


def min_size_reason(p: KernelParams) -> str:
    """Why KMALLOC_MIN_SIZE has its value on this kernel (include/linux/slab.h)."""
    if p.arch_kmalloc_minalign > 8:
        return (f"ARCH_DMA_MINALIGN is {p.arch_dma_minalign} (arch/arm64/include/asm/cache.h) "
                "and before 6.5 include/linux/slab.h makes it ARCH_KMALLOC_MINALIGN, so "
                f"KMALLOC_MIN_SIZE = {p.kmalloc_min_size}")
    text = "ARCH_KMALLOC_MINALIGN is __alignof__(unsigned long long) = 8, so KMALLOC_MIN_SIZE = 8"
    if (p.arch_dma_minalign or 0) > 8:
        text += (f"; ARCH_DMA_MINALIGN is still {p.arch_dma_minalign}, but since 6.5 it no longer "
                 "sets the kmalloc minimum: unaligned DMA buffers are bounced through swiotlb "
                 "instead (CONFIG_DMA_BOUNCE_UNALIGNED_KMALLOC)")
    return text


def missing_small_caches(p: KernelParams) -> list[str]:
    """kmalloc-96 / kmalloc-192 when create_kmalloc_caches() skips them on this kernel."""
    created = km.created_indexes(p)
    return [f"kmalloc-{km.kmalloc_info_size(i)}" for i in (1, 2) if i not in created]


def differences(here: KernelParams, there: KernelParams) -> list[str]:
    """The parameters behind a different kmalloc answer, as sentences, most important first."""
    out: list[str] = []
    if here.kmalloc_min_size != there.kmalloc_min_size:
        why = (f": {min_size_reason(there)}" if there.kmalloc_min_size > 8
               or (there.arch_dma_minalign or 0) > 8 else " (see above)")
        out.append(f"KMALLOC_MIN_SIZE is {there.kmalloc_min_size} there, {here.kmalloc_min_size} "
                   f"here{why}.")
        gone = missing_small_caches(there)
        if gone and not missing_small_caches(here):
            out.append(f"So {' and '.join(gone)} do not exist there.")
        elif missing_small_caches(here) and not gone:
            out.append(f"So {' and '.join(missing_small_caches(here))} exist there.")
    elif here.kmalloc_minalign != there.kmalloc_minalign:
        out.append(f"The runtime kmalloc alignment (6.12 mm/slab_common.c:__kmalloc_minalign()) "
                   f"is {there.kmalloc_minalign} there, {here.kmalloc_minalign} here.")
    if here.page_size != there.page_size:
        out.append(f"PAGE_SIZE is {there.page_size} there, {here.page_size} here "
                   f"({tables.source('PAGE_SHIFT')}).")
    return out


ALIGN_RULE = {
    "power_of_two": "aligns only power-of-two sizes naturally",
    "largest_pow2_divisor": "aligns each cache to the largest power of two dividing its size",
}


def _serving(p: KernelParams, size: int) -> km.KmallocCache | None:
    if size == 0 or size > p.kmalloc_max_cache_size:
        return None
    return km.kmalloc_slab(p, size, "normal")


def compare_kmalloc(target: ModelTarget, others: list[ModelTarget], size: int,
                    gfp: str) -> list[str]:
    """One line per other kernel: same answer, or the different answer and why."""
    here = target.model.params
    mine = target.model.ksize(size, gfp).value
    my_cache = _serving(here, size)
    lines: list[str] = []
    for other in others:
        there = other.model.params
        theirs = other.model.ksize(size, gfp).value
        cache = other.model.kmalloc_cache_for(size, gfp).value
        name = f"{other.arch} {other.series}"
        if theirs == mine:
            line = f"- {name}: the same ({cache or 'pages'}, ksize {theirs})."
        else:
            delta = theirs - mine
            line = (f"- {name}: {cache or 'pages'}, ksize {theirs} ({abs(delta)} bytes "
                    f"{'more' if delta > 0 else 'less'}). " + " ".join(
                        differences(here, there)))
        their_cache = _serving(there, size)
        if (my_cache and their_cache and my_cache.name == their_cache.name
                and my_cache.align != their_cache.align):
            line += (f" Its objects are {their_cache.align}-byte aligned there, "
                     f"{my_cache.align} here: mm/slab_common.c:create_boot_cache() of "
                     f"{other.series} {ALIGN_RULE[there.kmalloc_cache_align]}.")
        lines.append(line)
    return lines


def explain_kmalloc(target: ModelTarget, size: int, gfp: str = "GFP_KERNEL",
                    others: list[ModelTarget] | None = None) -> str:
    """Why kmalloc(size, gfp) lands where it does on ``target``, and on the other kernels."""
    p = target.model.params
    body = target.model.explain_kmalloc(size, gfp).splitlines()
    lines = [_header(target, f"kmalloc({size}, {gfp})") + ":", *body[1:]]
    elem = (size - 1) // 8
    if 0 < size <= 192 and km.size_index_table(p)[elem] != km.SIZE_INDEX[elem]:
        # Only when this size's lookup was redirected: say why the table is patched.
        gone = missing_small_caches(p)
        if p.kmalloc_min_size > 8:
            lines.append(f"- Why KMALLOC_MIN_SIZE is {p.kmalloc_min_size}: {min_size_reason(p)}.")
        if gone:
            lines.append(f"- This kernel has no {' and no '.join(gone)}: "
                         "mm/slab_common.c:create_kmalloc_caches() creates kmalloc-96 only when "
                         "KMALLOC_MIN_SIZE <= 32 and kmalloc-192 only when it is <= 64.")
    if others is None:
        others = [t for t in all_targets(target.model.ncpus) if t.label != target.label]
    if others:
        lines.append("On the other kernels:")
        lines.extend(compare_kmalloc(target, others, size, gfp))
    return "\n".join(lines)


def _free_pointer(layout: slab.SlabLayout, ctor: bool, flags: slab.SlabFlag) -> str:
    if layout.freeptr_outside:
        why = ("a constructor" if ctor else "SLAB_TYPESAFE_BY_RCU"
               if slab.SlabFlag.TYPESAFE_BY_RCU in flags else "a debug flag")
        return (f"the free pointer moves behind the object (offset {layout.offset}, +8 bytes) "
                f"because of {why}: the object's bytes must stay intact while it is free")
    return (f"the free pointer lives inside the free object at offset {layout.offset} "
            "(ALIGN_DOWN(object_size / 2, 8)), costing nothing")


def explain_cache(target: ModelTarget, size: int, align: int = 0, flags: str = "",
                  ctor: bool = False, others: list[ModelTarget] | None = None) -> str:
    """Why kmem_cache_create(size, align, flags, ctor) gets its slabinfo columns."""
    from kmodlab.claims.predict import merge_fields

    m = target.model
    p = m.params
    f = slab.parse_slab_flags(flags or None, p)
    info = m.kmem_cache(size, align, flags or None, ctor).value
    layout, g = info.layout, info.geometry
    what = (f"kmem_cache_create(size={size}, align={align}, flags={flags or '0'}, "
            f"ctor={'yes' if ctor else 'NULL'})")
    lines = [_header(target, what) + ":"]
    hw = (f"SLAB_HWCACHE_ALIGN asks for cache_line_size() = {p.cache_line_size}, halved while "
          "the object fits in half of it; " if slab.SlabFlag.HWCACHE_ALIGN in f else "")
    lines.append(f"- Alignment {layout.align}: {hw}at least 8 and a multiple of sizeof(void *) "
                 "(mm/slab_common.c:calculate_alignment()).")
    lines.append(f"- Slot size (objsize) {layout.size}: ALIGN({size}, 8) = "
                 f"{slab.align_up(size, 8)}; {_free_pointer(layout, ctor, f)}; rounded up to the "
                 f"alignment (mm/slub.c:calculate_sizes()).")
    lines.append(f"- Slab: order {g.order} ({g.pages} page(s)), {g.objects} objects, {g.waste} "
                 f"bytes left over per slab; mm/slub.c:calculate_order() wants at least "
                 f"{p.min_objects} objects (4 * (fls({p.ncpus} CPUs) + 1)) with at most 1/16 "
                 "of the slab wasted, trying orders up to 3.")
    merge, into = merge_fields(target, size, align, flags, ctor, 0)
    if merge["value"]:
        where = (f"into {into['value']}" if into["value"] else
                 "into the first existing cache of the same class, if any")
        lines.append(f"- Merging: mergeable, class {merge.get('unique_id')}; it would merge "
                     f"{where}; candidates: {into.get('candidates', '')}. A merged cache has "
                     "no slabinfo "
                     "line of its own: its objects are counted under the target's name "
                     "(mm/slab_common.c:find_mergeable()).")
    else:
        lines.append(f"- Merging: never, {merge['reason']} (mm/slab_common.c:"
                     "slab_unmergeable()); the cache gets its own slabinfo line.")
    if others is None:
        others = [t for t in all_targets(m.ncpus) if t.label != target.label]
    if others:
        lines.append("On the other kernels:")
        mine = (layout.size, g.objects, g.pages)
        for other in others:
            oi = other.model.kmem_cache(size, align, flags or None, ctor).value
            theirs = (oi.layout.size, oi.geometry.objects, oi.geometry.pages)
            name = f"{other.arch} {other.series}"
            if theirs == mine:
                lines.append(f"- {name}: the same (objsize {theirs[0]}, {theirs[1]} per slab, "
                             f"{theirs[2]} page(s)).")
            else:
                lines.append(f"- {name}: objsize {theirs[0]}, {theirs[1]} per slab, {theirs[2]} "
                             f"page(s) (slab order rule: {other.model.params.calculate_order}).")
    return "\n".join(lines)
