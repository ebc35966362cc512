"""vmalloc: pages per area, the guard page in each /proc/vmallocinfo size, the nested page-array
area above 512 pages (same caller), VmallocUsed, and kmalloc's physical contiguity.

vmallocinfo lines are matched by caller (the module's noinline kml_vmalloc_area /
kml_vzalloc_area), so other vmalloc users never blur the comparison.  /proc/meminfo's
VmallocUsed (mm/vmalloc.c:vmalloc_nr_pages()) counts every VM_ALLOC area, including the module's
own code that insmod maps, so its change is bounded below by the model's pages and above by the
pages of the other areas that appeared meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator

from kmodlab.check.common import lifecycle_rows
from kmodlab.check.observation import Observation, Probe, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules.params.vmalloc import VmallocParams
from kmodlab.runner import ProcSnapshot

FAMILY = "vmalloc"
PARAMS = ("sizes=1,4096,10000,65536,2097152,3145728,8388608", "apis=vmalloc,vzalloc",
          "kmalloc_size=65536")
CALLERS = {"vmalloc": "kml_vmalloc_area", "vzalloc": "kml_vzalloc_area"}
R_GUARD = "mm/vmalloc.c:__get_vm_area_node(): size += PAGE_SIZE unless VM_NO_GUARD"
R_INFO = "mm/vmalloc.c:s_show() (6.12 vmalloc_info_show()): one line per vm_struct"
R_USED = "mm/vmalloc.c:vmalloc_nr_pages(): nr_pages of every VM_ALLOC area"


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, FAMILY, PARAMS)]


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, VmallocParams)
    page = model.PAGE_SIZE
    predicted_pages = 0
    for api in p.apis:
        expected_sizes: list[int] = []
        flagged = 0
        for size in p.sizes:
            test = f"{api}_{size}"
            v = values(obs.load, test)
            plan = model.vmalloc(size)
            rows.check(test, "pages", model.vmalloc_pages(size), v.get("pages"))
            rows.exact(test, "pages mapped (vmalloc_to_page)", plan.value.pages,
                       v.get("mapped"), plan.rule)
            rows.exact(test, "guard page unmapped", 1, v.get("guard_unmapped"), R_GUARD)
            expected_sizes.extend(a.size for a in plan.value.areas)
            flagged += sum("vpages" in a.flags for a in plan.value.areas)
            predicted_pages += plan.value.vmalloc_used_pages
        _caller_rows(rows, obs, api, expected_sizes, flagged)
    _contig(rows, model, obs, p)
    _used(rows, model, obs, predicted_pages * page // 1024)
    lifecycle_rows(rows, obs)
    return iter(rows.rows)


def _caller_rows(rows: Rows, obs: Observation, api: str, sizes: list[int], vpages: int) -> None:
    test = f"vmallocinfo {CALLERS[api]}"
    seen = obs.held.vmallocinfo.by_caller(CALLERS[api], obs.module) if obs.held else None
    rows.exact(test, "lines (incl. nested page arrays)", len(sizes),
               None if seen is None else len(seen), R_INFO,
               "__vmalloc_area_node(): a page array above PAGE_SIZE is vmalloc'ed by the same "
               "caller")
    rows.exact(test, "sizes (pages + guard page)", tuple(sorted(sizes)),
               None if seen is None else tuple(sorted(e.size for e in seen)), R_GUARD)
    rows.exact(test, "lines flagged vpages", vpages,
               None if seen is None else sum("vpages" in e.flags for e in seen),
               "mm/vmalloc.c: VM_ALLOC areas whose page array is itself vmalloc'ed")


def _contig(rows: Rows, model: Model, obs: Observation, p: VmallocParams) -> None:
    v = values(obs.load, "kmalloc_contig")
    rule = "kmalloc() memory is one slab object or one buddy block in the linear map"
    rows.exact("kmalloc_contig", "physical discontinuities", 0, v.get("discontig"), rule)
    rows.exact("kmalloc_contig", "is_vmalloc_addr", 0, v.get("is_vmalloc"), rule)


def _other_kb(before: ProcSnapshot, after: ProcSnapshot, page_size: int) -> int:
    """Net change of the VM_ALLOC areas that are not the module's (its code, task stacks)."""
    def pages(snap: ProcSnapshot) -> int:
        return sum(e.pages for e in snap.vmallocinfo if "vmalloc" in e.flags and
                   (e.caller is None or e.caller.function not in CALLERS.values()))
    return (pages(after) - pages(before)) * page_size // 1024


def _used(rows: Rows, model: Model, obs: Observation, predicted_kb: int) -> None:
    """VmallocUsed while loaded: our areas plus the net change of the others (the module's
    code mapped by insmod, task stacks).  Each snapshot reads vmallocinfo and then meminfo in a
    new process, whose stack (VMAP_STACK: THREAD_SIZE of vmalloc) may come or go between the
    two reads: two stacks either way of slack."""
    page = model.PAGE_SIZE
    slack = 2 * model.params.thread_size // 1024
    why = (f"{slack} kB: two task stacks (THREAD_SIZE) of the reading processes may be "
           "vmalloc'ed or freed between the vmallocinfo and meminfo reads")
    if obs.held is None:
        rows.exact("meminfo", "ΔVmallocUsed (kB)", predicted_kb, None, R_USED)
        return
    before, held = obs.baseline, obs.held
    other = _other_kb(before, held, page)
    delta = held.meminfo.kb("VmallocUsed") - before.meminfo.kb("VmallocUsed")
    rows.bounded("meminfo", "ΔVmallocUsed (kB)", predicted_kb + other,
                 predicted_kb + other - slack, predicted_kb + other + slack, delta, R_USED,
                 f"the module's areas ({predicted_kb} kB) plus {other} kB net of other VM_ALLOC "
                 f"areas (the module's code, stacks); ± {why}")
    if obs.released is not None:
        other = _other_kb(before, obs.released, page)
        back = obs.released.meminfo.kb("VmallocUsed") - before.meminfo.kb("VmallocUsed")
        rows.bounded("meminfo", "ΔVmallocUsed after unload (kB)", other, other - slack,
                     other + slack, back,
                     "mm/vmalloc.c:vfree() -> vm_reset_perms()/__vunmap(): pages freed at once",
                     f"the module's areas are gone: only {other} kB net of other areas remain; "
                     f"± {why}")
