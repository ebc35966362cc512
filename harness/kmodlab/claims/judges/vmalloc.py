"""Claims about vmalloc against kmalloc: speed (timed by kml_claims) and physical
contiguity (the vmalloc family's pfn walk with vmalloc_to_page())."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, count_text, int_value, register, size_text
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget


@register
class VmallocSlower(Judge):
    """"vmalloc is slower than kmalloc (because of page tables)"."""

    name = "vmalloc_slower"

    def model(self, target: ModelTarget, *, sizes: list[int], **_: Any) -> Finding:
        m = target.model
        parts = []
        for n in (sizes[1], sizes[-1]):
            plan = m.vmalloc(n).value
            kcache = m.kmalloc_cache_for(n).value
            korder = m.kmalloc_large_order(n).value
            kdesc = kcache if kcache else f"one order-{korder} block"
            parts.append(f"vmalloc({n}) = {count_text(plan.pages, 'separate page')}, "
                         f"{count_text(plan.pages, 'PTE')}, a vmap_area and a vm_struct "
                         f"({plan.vm_struct_cache}); kmalloc({n}) = {kdesc}")
        return Finding("true", "more work", "; ".join(parts) + ". The model has no clock: "
                       "this is the structure, not a time", m.vmalloc(sizes[0]).rule,
                       short="yes: pages one at a time + vmap area + PTEs, against one slab "
                             "object or page block")

    def measured(self, target: ModelTarget, obs: Observations, *, sizes: list[int],
                 **_: Any) -> Finding | None:
        # The fastest of N calls: other guests share the host, and only slow-downs are noise.
        ratios: list[tuple[int, float, float]] = []
        for n in sizes:
            v = obs.values("claims_module", f"timing_{n}")
            k, vm, pg = (int_value(v, "kmalloc_min_ns"), int_value(v, "vmalloc_min_ns"),
                         int_value(v, "pages_min_ns"))
            if not k or not vm or pg is None:
                continue
            ratios.append((n, vm / k, pg / vm))
        if not ratios:
            return None
        slower = all(r > 1 for _, r, _ in ratios)
        cells = ", ".join(f"{size_text(n)} x{r:.1f}" for n, r, _ in ratios)
        big = ratios[-1]
        answer = (f"vmalloc/kmalloc time per call (fastest of {_iterations(obs, sizes)}): "
                  f"{cells}. At {size_text(big[0])} getting the pages (and zeroing them: "
                  f"init_on_alloc) is {100 * big[2]:.0f}% of vmalloc's time and kmalloc pays "
                  "the same for its page block; the vmap area and the page tables are the "
                  "rest, and they dominate only small requests")
        short = ("yes, at every size" if big[1] >= 1.5 else
                 "yes, but by a fixed cost that matters for small requests; for large ones "
                 "both mostly pay for the pages, and the page tables are a small part")
        return Finding("true" if slower else "depends",
                       f"x{min(r for _, r, _ in ratios):.1f}..x{max(r for _, r, _ in ratios):.1f}",
                       answer, "claims_module/timing_<n> *_min_ns", None,
                       short if slower else "not at every size here", comparable=False)


def _iterations(obs: Observations, sizes: list[int]) -> int | str:
    for n in sizes:
        it = int_value(obs.values("claims_module", f"timing_{n}"), "iterations")
        if it:
            return it
    return "N"


@register
class Contiguity(Judge):
    """"kmalloc memory is physically contiguous, vmalloc memory is not"."""

    name = "contiguity"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        return Finding("depends", "kmalloc: always; vmalloc: not guaranteed",
                       "kmalloc memory is contiguous by construction (one slab object in the "
                       "linear map, or one compound page block); vmalloc memory is only "
                       "virtually contiguous: its pages are allocated one by one and are "
                       "contiguous only by chance",
                       "mm/vmalloc.c:vm_area_alloc_pages() + mm/slub.c:virt_to_slab()",
                       short="kmalloc: always; vmalloc: not guaranteed (contiguous only by "
                             "chance)")

    def measured(self, target: ModelTarget, obs: Observations, **_: Any) -> Finding | None:
        kmalloc = obs.values("vmalloc_contiguity", "kmalloc_contig")
        areas = {t: v for t, v in obs.tests("vmalloc_contiguity").items()
                 if t.startswith("vmalloc_") and v.get("allocated") == 1}
        kbreaks = int_value(kmalloc, "discontig")
        if kbreaks is None or not areas:
            return None
        breaks = sum(int(v.get("discontig", 0)) for v in areas.values())
        pages = sum(int(v.get("pages", 0)) for v in areas.values())
        kpages = int_value(kmalloc, "pages") or 0
        detail = ", ".join(f"{size_text(int(v['requested']))}: {v['discontig']}"
                           for v in areas.values())
        answer = (f"kmalloc: {kbreaks} pfn breaks in {kpages} pages; vmalloc: {breaks} breaks "
                  f"in {pages} pages ({detail})"
                  + ("; contiguous this time, but nothing guarantees it" if breaks == 0 else ""))
        return Finding("depends" if kbreaks == 0 else "false",
                       f"vmalloc {breaks} breaks/{pages} pages", answer,
                       "vmalloc_contiguity/vmalloc_<n> + kmalloc_contig discontig",
                       kbreaks == 0)
