"""ioremap: device memory through the vmalloc address space.

The device is the guest's ivshmem BAR 2, a file on the host.  Each window the module maps
(ioremap, ioremap_wc, pci_iomap) must show up as one /proc/vmallocinfo line with the ``ioremap``
flag, ``phys=`` the window's page, no pages of RAM and the size the model predicts (the mapped
pages plus a guard page), at an address aligned as the model says; the words the module wrote
through readl/writel and ioread32/iowrite32 must be in the host file exactly where it wrote
them; /proc/iomem must name the module as the BAR's owner while it is loaded, and nothing of it
may remain after unload.

vmallocinfo lines are matched by ``phys=`` (printed with %pa, never hashed), not by caller: on
6.6+ arm64 the caller of an ioremap area is ioremap_prot(), not the module.
"""

from __future__ import annotations

from collections.abc import Iterator

from kmodlab.check.common import lifecycle_rows
from kmodlab.check.observation import Observation, Probe, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules.params.ioremap import IoremapParams
from kmodlab.observe.iomem import claimed_by, parse_iomem
from kmodlab.observe.shared_memory import parse_runs
from kmodlab.observe.vmallocinfo import VmallocEntry
from kmodlab.runner import ProcSnapshot

FAMILY = "ioremap"
IOMEM = {"iomem": "cat /proc/iomem"}
# Windows that start inside a page and end inside another (offset 100, 10000 bytes: 3, 3 and 4
# pages), and windows of 64 pages (the alignment the model predicts exactly).
PROBES = (("ioremap", ("apis=ioremap,ioremap_wc,pci_iomap", "size=10000", "offset=100")),
          ("ioremap-large", ("apis=ioremap,ioremap_wc,pci_iomap", "size=262144")))
R_BAR = ("QEMU hw/misc/ivshmem.c: BAR 2 is the memory backend (docs/specs/ivshmem-spec.rst), "
         "share=on: the guest's stores land in the host file")
R_ACCESS = "include/asm-generic/io.h (arm64, x86: asm/io.h): writel/readl, lib/iomap.c: iowrite32"
R_IOMEM = ("drivers/pci/pci.c:pci_request_region() -> kernel/resource.c:__request_region(); "
           "r_show() prints it nested under the BAR")
R_RAM = "kernel/resource.c:region_intersects(IORESOURCE_SYSTEM_RAM) == REGION_DISJOINT"
R_UNMAP = "mm/vmalloc.c:vunmap()/iounmap() -> remove_vm_area(): the area leaves vmallocinfo"


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, name, params, before=IOMEM, between=IOMEM, after=IOMEM,
                  shared_memory=True) for name, params in PROBES]


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, IoremapParams)
    device = values(obs.load, "device")
    bar_start, bar_len = device.get("bar_start"), device.get("bar_len")
    rows.exact("device", "ivshmem BAR 2 claimed", 1, device.get("region"), R_IOMEM)
    _host_rows(rows, obs, p, bar_len)
    for window in p.windows():
        _window_rows(rows, obs, model, p, window)
    _area_rows(rows, obs, model, p, bar_start)
    _iomem_rows(rows, obs, bar_start, bar_len)
    lifecycle_rows(rows, obs)
    return iter(rows.rows)


def _ioremap_lines(snap: ProcSnapshot | None, phys: int) -> list[VmallocEntry] | None:
    if snap is None:
        return None
    return [e for e in snap.vmallocinfo if "ioremap" in e.flags and e.phys is not None
            and int(e.phys, 16) == phys]


def _window_rows(rows: Rows, obs: Observation, model: Model, p: IoremapParams,
                 window: dict) -> None:
    test = f"map_{window['api']}"
    v = values(obs.load, test)
    plan = model.ioremap(window["offset"], p.size)
    rule = plan.rule
    w = plan.value
    rows.exact(test, "mapped", 1, v.get("mapped"), rule)
    rows.exact(test, "words read back wrong", 0, v.get("readback_bad"), R_ACCESS)
    rows.exact(test, "is_vmalloc_addr()", 1, v.get("vmalloc_addr"), rule,
               "ioremap areas come from the vmalloc range")
    rows.exact(test, "offset in page", w.page_offset, v.get("page_offset"), rule)
    rows.exact(test, "overlaps System RAM", 0, v.get("ram"), R_RAM,
               "a BAR is device memory: ioremap() maps it, the page allocator never owned it")
    if w.align_exact:
        rows.bounded(test, "address alignment (at least)", w.min_align, w.min_align, 1 << 62,
                     v.get("virt_align"), rule,
                     "the area is asked to be aligned to this; a higher one happens by chance")
    else:
        rows.bounded(test, "address alignment (at least)", w.min_align, w.min_align, 1 << 62,
                     v.get("virt_align"), rule,
                     "above 128 pages IOREMAP_MAX_ORDER is per arch: at least 128 pages")


def _area_rows(rows: Rows, obs: Observation, model: Model, p: IoremapParams,
               bar_start: int | None) -> None:
    """The vmallocinfo lines of each physical page a window starts in (with 16 KiB pages
    several windows may start in one page: their lines are compared as a group)."""
    page = model.PAGE_SIZE
    groups: dict[int | None, list[tuple[str, int]]] = {}
    for window in p.windows():
        phys = None if bar_start is None else (bar_start + window["offset"]) // page * page
        plan = model.ioremap(window["offset"], p.size)
        groups.setdefault(phys, []).append((window["api"], plan.value.area_size))
    rule = model.ioremap(0, p.size).rule
    for phys, members in groups.items():
        test = "vmallocinfo" if phys is None else f"vmallocinfo phys={phys:#x}"
        apis = "+".join(api for api, _ in members)
        held = None if phys is None else _ioremap_lines(obs.held, phys)
        rows.exact(test, f"{apis}: ioremap line sizes (pages + guard)",
                   tuple(sorted(size for _, size in members)),
                   None if held is None else tuple(sorted(e.size for e in held)), rule)
        rows.exact(test, f"{apis}: pages of RAM", 0,
                   None if held is None else sum(e.pages for e in held), rule,
                   "an ioremap area maps the device: no page is allocated")
        after = None if phys is None else _ioremap_lines(obs.released, phys)
        rows.exact(test, f"{apis}: lines after unload", 0,
                   None if after is None else len(after), R_UNMAP)


def _host_rows(rows: Rows, obs: Observation, p: IoremapParams, bar_len: int | None) -> None:
    """The host file: exactly the windows' words, where the module put them, nothing else."""
    test = "host file"
    shared = parse_runs(obs.shared_memory) if obs.shared_memory is not None else None
    rows.exact(test, "size = BAR 2 length", bar_len, None if shared is None else shared.size,
               R_BAR)
    expected = tuple((w["offset"], w["word"], p.size // 4) for w in p.windows())
    seen = None if shared is None else tuple((r.offset, r.word, r.count) for r in shared.runs)
    rows.exact(test, "non-zero word runs (offset, word, count)", expected, seen, R_BAR,
               "each window's word, from its offset, size/4 times; the rest still zero")


def _iomem_rows(rows: Rows, obs: Observation, bar_start: int | None,
                bar_len: int | None) -> None:
    name = obs.module

    def claimed(text: str | None) -> list[tuple[int, int]] | None:
        if text is None:
            return None
        return [(e.start, e.size) for e in claimed_by(parse_iomem(text), name)]

    test = f"/proc/iomem {name}"
    rows.exact(test, "claims before load", [], claimed(obs.before.get("iomem")), R_IOMEM)
    rows.exact(test, "claims while loaded (start, size)",
               None if bar_start is None else [(bar_start, bar_len)],
               claimed(obs.between.get("iomem")), R_IOMEM)
    rows.exact(test, "claims after unload", [], claimed(obs.after.get("iomem")),
               "drivers/pci/pci.c:pci_release_region()")
