"""Claims about memory zones and high memory: which zone a mask is served from, and which
allocators can hand out high memory (the pages and kmalloc families in a guest big enough for
i386 to have a HighMem zone)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, register
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget

R_ZONES = ("include/linux/gfp.h:gfp_zone() + mm/page_alloc.c zonelists (highest allowed zone "
           "first, then downwards)")
R_HIGHMEM = "include/linux/mmzone.h: ZONE_HIGHMEM exists only with CONFIG_HIGHMEM (32-bit)"


def _zone(obs: Observations, probe: str, test: str) -> str | None:
    v = obs.values(probe, test)
    zone = v.get("zone") if v else None
    return zone if isinstance(zone, str) else None


def _served(target: ModelTarget, memory_mb: int, gfp: str) -> str:
    """The zone the model serves ``gfp`` from in a guest of ``memory_mb``."""
    m = target.model
    return m.preferred_zone(m.populated_zones(memory_mb << 20).value, gfp)


@register
class HighmemOnly32Bit(Judge):
    """"High memory exists only on 32-bit systems"."""

    name = "highmem_32bit_only"

    def model(self, target: ModelTarget, *, memory_mb: int, **_: Any) -> Finding:
        m = target.model
        if m.params.highmem:
            zones = m.highmem_zones(memory_mb << 20)
            return Finding("true", "HighMem zone",
                           f"yes: this 32-bit kernel has ZONE_HIGHMEM; with {memory_mb} MiB the "
                           f"zones are {', '.join(zones.value)}: pages above the lowmem limit "
                           "have no permanent kernel address", zones.rule,
                           short="yes: only 32-bit kernels have ZONE_HIGHMEM")
        return Finding("true", "no HighMem",
                       "yes: a 64-bit kernel maps all of RAM in its linear map; it has no "
                       "ZONE_HIGHMEM and __GFP_HIGHMEM means Normal", R_HIGHMEM,
                       short="yes: only 32-bit kernels have ZONE_HIGHMEM")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str, memory_mb: int,
                 **_: Any) -> Finding | None:
        v = obs.values(probe, "alloc_pages_highuser_o0")
        if not v or v.get("allocated") != 1:
            return None
        high, addressed = v.get("highmem"), v.get("page_address")
        zone = v.get("zone")
        expect_high = target.model.params.highmem
        ok = high == int(expect_high) and addressed == int(not expect_high)
        answer = (f"alloc_pages(GFP_HIGHUSER) in a {memory_mb} MiB guest: zone {zone}, "
                  f"PageHighMem {high}, page_address() {'set' if addressed else 'NULL'}")
        return Finding("true" if ok else "false", f"{zone}, address {'set' if addressed else 'NULL'}",
                       answer, f"{probe}/alloc_pages_highuser_o0 highmem + page_address", ok)


@register
class DmaZoneOnly(Judge):
    """"__GFP_DMA: only the DMA zone is searched"."""

    name = "gfp_dma_zone_only"

    def model(self, target: ModelTarget, *, memory_mb: int, **_: Any) -> Finding:
        zone = _served(target, memory_mb, "GFP_KERNEL|GFP_DMA")
        return Finding("true", zone,
                       "yes: gfp_zone(__GFP_DMA) is ZONE_DMA, the lowest zone, so the zonelist "
                       "has nothing below it to fall back to (the DMA zone is the first 16 MiB "
                       "on x86, all RAM below the DMA limit on arm64)", R_ZONES,
                       short="yes: ZONE_DMA is the lowest zone, there is no fallback")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str,
                 **_: Any) -> Finding | None:
        zones = {t: _zone(obs, probe, t) for t in ("alloc_pages_kernel_dma_o0",
                                                    "get_free_pages_kernel_dma_o0")}
        if None in zones.values():
            return None
        ok = set(zones.values()) == {"DMA"}
        return Finding("true" if ok else "false", "/".join(sorted(set(zones.values()))),
                       f"GFP_KERNEL|GFP_DMA pages came from {', '.join(sorted(set(zones.values())))}",
                       f"{probe}/*_kernel_dma_o0 zone", ok)


@register
class HighmemAnyZone(Judge):
    """"__GFP_HIGHMEM: all three zones may be used"."""

    name = "gfp_highmem_any_zone"

    def model(self, target: ModelTarget, *, memory_mb: int, **_: Any) -> Finding:
        m = target.model
        zone = _served(target, memory_mb, "GFP_HIGHUSER")
        if m.params.highmem:
            return Finding("true", zone,
                           "yes: gfp_zone(__GFP_HIGHMEM) is ZONE_HIGHMEM and the zonelist falls "
                           "back to Normal, then DMA; HighMem is tried first", R_ZONES,
                           short="yes on 32-bit: HighMem first, then Normal, then DMA")
        return Finding("depends", zone,
                       f"no third zone here: without ZONE_HIGHMEM __GFP_HIGHMEM means Normal "
                       f"(gfp_zone(), OPT_ZONE_HIGHMEM), served from {zone}", R_ZONES,
                       short="only on 32-bit; on 64-bit __GFP_HIGHMEM means Normal")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str, memory_mb: int,
                 **_: Any) -> Finding | None:
        zone = _zone(obs, probe, "alloc_pages_highuser_o0")
        if zone is None:
            return None
        expected = _served(target, memory_mb, "GFP_HIGHUSER")
        verdict = "true" if zone == "HighMem" else "depends"
        return Finding(verdict, zone, f"alloc_pages(GFP_HIGHUSER) was served from {zone}",
                       f"{probe}/alloc_pages_highuser_o0 zone", zone == expected)


@register
class NoHighmemFrom(Judge):
    """"kmalloc (or __get_free_pages) never returns high memory"."""

    name = "no_highmem_from"

    def model(self, target: ModelTarget, *, memory_mb: int, allocator: str,
              **_: Any) -> Finding:
        zone = _served(target, memory_mb, "GFP_KERNEL")
        why = ("__get_free_pages() drops __GFP_HIGHMEM (mm/page_alloc.c): it returns an address, "
               "and a high-memory page has none" if allocator == "get_free_pages" else
               "kmalloc memory is a slab object or a page block in the linear map; "
               "__GFP_HIGHMEM is in GFP_SLAB_BUG_MASK (mm/slab.h), stripped with a warning")
        return Finding("true", zone, f"yes: {why}; served from {zone}",
                       "mm/page_alloc.c:__get_free_pages() / mm/slab.h:GFP_SLAB_BUG_MASK",
                       short="yes: it returns addresses, and only low memory has one")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str, tests: list[str],
                 **_: Any) -> Finding | None:
        zones = {t: _zone(obs, probe, t) for t in tests}
        if None in zones.values():
            return None
        high = [t for t, z in zones.items() if z == "HighMem"]
        served = ", ".join(sorted(set(zones.values())))
        return Finding("false" if high else "true", served,
                       f"{', '.join(tests)}: served from {served}",
                       f"{probe}/{{{','.join(tests)}}} zone", not high)
