"""dma: coherent DMA buffers for a real PCI device (the guest's ivshmem), by hand and managed.

Each buffer must come from where the model says (CMA or a buddy block, from the zone the mask's
gfp flag leads to), take the pages it says (exact pages from CMA, a power-of-two block from the
buddy allocator: visible in /proc/meminfo's CmaFree and MemFree), be aligned, zeroed, in the
linear map, with its bus address equal to its physical one; and everything must be back after
unload: remove() frees the plain buffers, devres the managed ones when the driver detaches.

Which buffers are in CMA is decided here, not by the module: a buffer is in CMA when its
physical address falls in an area the boot log reports (mm/cma.c:cma_declare_contiguous_nid():
"cma: Reserved <n> MiB at <base>").
"""

from __future__ import annotations

from collections.abc import Iterator

from kmodlab.check.common import lifecycle_rows, populated_zones
from kmodlab.check.observation import Observation, Probe, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules.params.dma import DmaParams
from kmodlab.observe.cma import cma_areas
from kmodlab.observe.zoneinfo import free_and_listed_pages
from kmodlab.runner import ProcSnapshot

FAMILY = "dma"
# Under a page (the buddy allocator even with CMA), 3 pages (4 from the buddy allocator) and
# 257 pages (512 from the buddy allocator): CMA's exact pages and the buddy's power of two
# differ by 2 MiB over both apis, far beyond the noise of MemFree.
PARAMS = ("sizes=100,10000,1050000", "apis=dma_alloc_coherent,dmam_alloc_coherent",
          "mask_bits=32")
ZONEINFO_FILE = "/proc/zoneinfo"
ZONEINFO = {"zoneinfo": f"cat {ZONEINFO_FILE}"}
BEFORE = {"cmdline": "cat /proc/cmdline", "cma": "dmesg | grep 'cma: Reserved' || true",
          **ZONEINFO}
CMA_SLACK_PAGES = 16
"""CmaFree moves only when movable allocations fall back to CMA pageblocks, rare on an idle guest
whose CMA area is a small part of its memory."""
FREE_SLACK_KB = 512
"""Free pages: the harness's own commands and slab growth move them by a few hundred kB between
two reads."""
R_DIRECT = "kernel/dma/direct.c:dma_direct_alloc()"
R_FREE = ("kernel/dma/direct.c:dma_direct_free() from remove(); drivers/base/dd.c:"
          "device_unbind_cleanup() -> devres_release_all() for dmam_alloc_coherent()")


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, FAMILY, PARAMS, before=BEFORE, between=ZONEINFO, after=ZONEINFO)]


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, DmaParams)
    cmdline = obs.before.get("cmdline", "")
    areas = cma_areas(obs.before["cma"]) if "cma" in obs.before else None
    if not areas and (_kb(obs.baseline, "CmaTotal") or 0) > 0:
        areas = None       # the kernel has CMA but its log did not say where: not observed
    zones = populated_zones(obs.baseline)
    probe = values(obs.load, "probe")
    rows.exact("probe", "driver bound to the device", 1, probe.get("probes"),
               "drivers/pci/pci-driver.c:__pci_register_driver() -> probe")
    cma_pages = all_pages = 0
    for buf in p.buffers():
        plan = model.dma_alloc_coherent(buf["size"], p.mask_bits, cmdline)
        w = plan.value
        cma_pages += w.pages if w.from_cma else 0
        all_pages += w.pages
        _buffer_rows(rows, obs, model, buf["name"], plan.rule, w, zones, areas)
    _meminfo_rows(rows, obs, model, cmdline, cma_pages, all_pages)
    lifecycle_rows(rows, obs)
    return iter(rows.rows)


def _buffer_rows(rows: Rows, obs: Observation, model: Model, test: str, rule: str, w,
                 zones: list[str], areas: list[tuple[int, int]] | None) -> None:
    v = values(obs.load, test)
    rows.exact(test, "allocated", 1, v.get("allocated"), rule)
    rows.exact(test, "zone", model.preferred_zone(zones, w.gfp), v.get("zone"),
               f"{rule} + include/linux/gfp.h:gfp_zone({w.gfp})")
    rows.bounded(test, "pfn alignment (pages, at least)", w.align_pages, w.align_pages,
                 1 << 20, v.get("pfn_align"), rule,
                 "the block or CMA range is aligned to this; more happens by chance")
    phys = v.get("phys")
    in_cma = None
    if areas is not None and isinstance(phys, int):
        in_cma = any(base <= phys < base + size for base, size in areas)
    rows.exact(test, "from CMA", w.from_cma, in_cma, rule,
               "in CMA: its physical address is inside an area the boot log reported")
    rows.exact(test, "zeroed", 1, v.get("zeroed"), f"{R_DIRECT}: memset(ret, 0, size)")
    rows.exact(test, "in the linear map", 1, v.get("linear_map"),
               f"{R_DIRECT}: page_address() for a DMA-coherent device (no remap)")
    rows.exact(test, "bus address = physical address", 1, v.get("dma_is_phys"),
               "include/linux/dma-direct.h:phys_to_dma() without an offset or IOMMU")


def _kb(snap: ProcSnapshot | None, key: str) -> int | None:
    if snap is None:
        return None
    return snap.meminfo.data.get(key)


def _meminfo_rows(rows: Rows, obs: Observation, model: Model, cmdline: str, cma_pages: int,
                  all_pages: int) -> None:
    page_kb = model.PAGE_SIZE // 1024
    total = model.cma_total_kb(cmdline)
    absent = "no CmaTotal line (no CONFIG_CMA)"
    seen = _kb(obs.baseline, "CmaTotal")
    rows.exact("meminfo", "CmaTotal (kB)", absent if total.value is None else total.value,
               absent if seen is None else seen, total.rule)
    if total.value:
        slack = CMA_SLACK_PAGES * page_kb
        got, base = _kb(obs.held, "CmaFree"), _kb(obs.baseline, "CmaFree")
        rows.bounded("meminfo", "ΔCmaFree while held (kB)", -cma_pages * page_kb,
                     -cma_pages * page_kb - slack, -cma_pages * page_kb + slack,
                     None if got is None or base is None else got - base, R_DIRECT,
                     f"± {CMA_SLACK_PAGES} pages: movable allocations may fall back to CMA")
    # The baseline is the load phase's (taken after the .ko was pushed into the guest's tmpfs,
    # whose pages stay taken); the probe's own reads stand in where a snapshot has none.
    before = free_and_listed_pages(obs.baseline.raw.get(ZONEINFO_FILE,
                                                        obs.before.get("zoneinfo")))
    unloaded = obs.unload.after if obs.unload is not None else None
    after_text = (unloaded.raw.get(ZONEINFO_FILE) if unloaded is not None else None) \
        or obs.after.get("zoneinfo")
    for phase, text, snap, pages, rule in (
            ("while held", obs.between.get("zoneinfo"), obs.held, -all_pages, R_DIRECT),
            ("after unload", after_text, obs.released, 0, R_FREE)):
        now = free_and_listed_pages(text)
        # The module's own code and data are vmalloc'ed too (kernel/module/main.c ->
        # mm/execmem.c): a few pages, or a whole 2 MiB page where x86 keeps module text in a
        # ROX cache of huge pages (7.x), taken at load and given back at unload.
        other = (snap.vmallocinfo.vmalloc_pages() - obs.baseline.vmallocinfo.vmalloc_pages()
                 if snap else 0)
        want = pages - other
        rows.bounded("zoneinfo", f"Δ(free + per-CPU list pages) {phase} (kB)",
                     want * page_kb, want * page_kb - FREE_SLACK_KB,
                     want * page_kb + FREE_SLACK_KB,
                     None if now is None or before is None else (now - before) * page_kb, rule,
                     f"the buffers ({pages * page_kb} kB) and {other * page_kb} kB of new "
                     f"vmalloc areas (the module's code, stacks); ± {FREE_SLACK_KB} kB: the "
                     "harness's commands and slab growth")
