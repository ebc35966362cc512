"""Claims about ioremap: device memory seen through the vmalloc address space (the ioremap
family's windows of the guest's ivshmem BAR)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, int_value, register
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget


@register
class IoremapLikeVmalloc(Judge):
    """"ioremap, like vmalloc, builds page tables, but allocates no memory"."""

    name = "ioremap_like_vmalloc"

    def model(self, target: ModelTarget, *, size: int, **_: Any) -> Finding:
        plan = target.model.ioremap(0, size)
        w = plan.value
        return Finding("true", "vmalloc range, not RAM",
                       f"yes: ioremap(phys, {size}) takes an area of the vmalloc range "
                       f"(VM_IOREMAP: {w.mapped_pages} pages + a guard page, aligned to "
                       f"{w.min_align} bytes) and points its page tables at the device's "
                       "physical addresses; no page is allocated for the data, only the page "
                       "tables and the area's bookkeeping (vm_struct, vmap_area)",
                       plan.rule,
                       short="yes: vmalloc address space, device pages; only page tables and "
                             "bookkeeping are allocated")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str,
                 **_: Any) -> Finding | None:
        windows = {t: v for t, v in obs.tests(probe).items() if t.startswith("map_")}
        if not windows or any(int_value(v, "mapped") != 1 for v in windows.values()):
            return None
        in_vmalloc = all(int_value(v, "vmalloc_addr") == 1 for v in windows.values())
        not_ram = all(int_value(v, "ram") == 0 for v in windows.values())
        wrote = all(int_value(v, "readback_bad") == 0 for v in windows.values())
        verdict = "true" if in_vmalloc and not_ram and wrote else "false"
        apis = ", ".join(t.removeprefix("map_") for t in windows)
        answer = (f"{apis}: " + ("every address is_vmalloc_addr(), the mapped range is no "
                                 "System RAM, and the words written through it read back"
                                 if verdict == "true" else
                                 f"vmalloc range {in_vmalloc}, not RAM {not_ram}, "
                                 f"read back {wrote}"))
        return Finding(verdict, "vmalloc range, not RAM" if verdict == "true" else "no",
                       answer, f"{probe}/map_<api> vmalloc_addr + ram + readback_bad",
                       verdict == "true")
