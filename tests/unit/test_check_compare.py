"""The family comparators on recorded guest observations (no guest needed).

tests/fixtures/check/<arch>-<series>/<probe>.json.gz are real runs saved with
``kmodlab check --record`` (kmodlab.check.replay; read them with ``zcat``).  Replayed as recorded, every row passes;
each deliberately wrong observation below must turn into the failure it stands for, so the
check can fail -- and says which rule predicted what.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kmodlab.check.families import CHECKS
from kmodlab.check.observation import Observation, slab_dump
from kmodlab.check.replay import observation_from_dict, read_recording
from kmodlab.check.rows import MISMATCH, NOT_OBSERVED, OUT, CheckRow
from kmodlab.model import Model

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "check"
RECORDINGS = sorted(FIXTURES.glob("*/*.json.gz"))
MIN_ROWS = {"kmalloc": 400, "kmem_cache": 15, "mempool": 50, "vmalloc": 50, "percpu": 20,
            "devres": 40, "pages": 60, "ioremap": 30, "dma": 40}       # per probe


def model_for(path: Path) -> Model:
    arch, series = path.parent.name.rsplit("-", 1)
    return Model(arch, series, ncpus=1)


def rows_of(data: dict[str, Any], model: Model) -> list[CheckRow]:
    obs = observation_from_dict(data)
    return list(CHECKS[obs.probe.family].compare(obs, model))


def recording(name: str, kernel: str = "x86_64-6.1") -> tuple[dict[str, Any], Model]:
    path = FIXTURES / kernel / f"{name}.json.gz"
    return read_recording(path), model_for(path)


def find(rows: list[CheckRow], test: str, quantity: str) -> CheckRow:
    hits = [r for r in rows if r.test == test and r.quantity == quantity]
    assert len(hits) == 1, f"{test}/{quantity}: {len(hits)} rows"
    return hits[0]


def edit_log(data: dict[str, Any], phase: str, edit: Callable[[str], str]) -> None:
    before = data[phase]["log"]
    data[phase]["log"] = edit(before)
    assert data[phase]["log"] != before, "the edit changed nothing"


def test_there_are_recordings_of_every_family() -> None:
    families = {read_recording(p)["probe"]["family"] for p in RECORDINGS}
    assert families == set(CHECKS)


@pytest.mark.parametrize("path", RECORDINGS,
                         ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('.json.gz')}")
def test_recorded_run_passes(path: Path) -> None:
    data = read_recording(path)
    rows = rows_of(data, model_for(path))
    family = data["probe"]["family"]
    failed = [f"{r.test} {r.quantity}: predicted {r.predicted} observed {r.observed} "
              f"({r.verdict}; {r.rule})" for r in rows if r.failed]
    assert not failed, "\n".join(failed)
    assert len(rows) >= MIN_ROWS[family]
    assert not [r for r in rows if r.verdict == NOT_OBSERVED]


# ------------------------------------------------------------------ deliberately wrong kernels
def test_wrong_ksize_is_a_mismatch_naming_the_rule() -> None:
    data, model = recording("kmalloc")
    edit_log(data, "load", lambda log: re.sub(
        r"(# kmalloc_160_kernel: requested=160 .*?ksize=)192", r"\g<1>200", log))
    row = find(rows_of(data, model), "kmalloc_160_kernel", "ksize")
    assert (row.verdict, row.predicted, row.observed) == (MISMATCH, 192, 200)
    assert "slab_ksize" in row.rule and row.failed


def test_wrong_cache_type_is_a_mismatch() -> None:
    # GFP_KERNEL_ACCOUNT served from the plain cache: kmalloc_type() would be wrong
    data, model = recording("kmalloc")
    edit_log(data, "load", lambda log: log.replace(
        "kmalloc_96_kernel_account: object slab kmalloc-cg-96",
        "kmalloc_96_kernel_account: object slab kmalloc-96"))
    row = find(rows_of(data, model), "kmalloc_96_kernel_account", "cache (kmem_dump_obj)")
    assert (row.verdict, row.predicted) == (MISMATCH, "kmalloc-cg-96")
    assert "kmalloc_type" in row.rule


def test_a_missing_test_is_not_observed() -> None:
    data, model = recording("kmalloc")
    edit_log(data, "load", lambda log: "\n".join(
        line for line in log.splitlines() if "kmalloc_8_kernel:" not in line))
    rows = rows_of(data, model)
    row = find(rows, "kmalloc_8_kernel", "ksize")
    assert row.verdict == NOT_OBSERVED and row.failed


def test_an_extra_dma_object_breaks_the_exact_count() -> None:
    data, model = recording("kmalloc")
    text = data["held"]["/proc/slabinfo"]
    line = next(x for x in text.splitlines() if x.startswith("dma-kmalloc-64 "))
    fields = line.split()
    bumped = line.replace(f" {fields[1]} ", f" {int(fields[1]) + 1} ", 1)
    data["held"]["/proc/slabinfo"] = text.replace(line, bumped)
    row = find(rows_of(data, model), "slabinfo dma-kmalloc-64", "Δactive_objs (shrunk)")
    assert row.verdict == MISMATCH and row.exact


def test_wrong_slab_geometry_is_a_mismatch() -> None:
    data, model = recording("kmem_cache")
    text = data["held"]["/proc/slabinfo"]
    line = next(x for x in text.splitlines() if x.startswith("kml_cache "))
    name, active, num, objsize, rest = line.split(None, 4)
    assert objsize == "128"
    data["held"]["/proc/slabinfo"] = text.replace(line, f"{name} {active} {num} 136 {rest}")
    row = find(rows_of(data, model), "kmem_cache", "slabinfo objsize")
    assert (row.verdict, row.predicted, row.observed) == (MISMATCH, 128, 136)
    assert "calculate_sizes" not in row.rule or "cache_show" in row.rule


@pytest.mark.parametrize("kernel", ["x86_64-6.1", "x86_64-7.2"])
def test_slabinfo_tools_report_is_held_against_the_model(kernel: str) -> None:
    """The kernel's slabinfo tool, run in the guest (recorded): its per-object loss must be the
    model's s->size - object_size; a report claiming more is a mismatch, none at all is not
    observed."""
    data, model = recording("kmem_cache-ctor", kernel)
    text = data["between"]["slabinfo"]
    assert "Slabcache: kml_cache" in text
    row = find(rows_of(data, model), "ctor", "slabinfo tool: Loss per object (SlabObj - Object)")
    assert row.verdict != MISMATCH and row.predicted == 12
    data["between"]["slabinfo"] = re.sub(r"Loss   :\s+12 ", "Loss   :      20 ", text)
    assert data["between"]["slabinfo"] != text
    row = find(rows_of(data, model), "ctor", "slabinfo tool: Loss per object (SlabObj - Object)")
    assert (row.verdict, row.observed) == (MISMATCH, 20)
    data["between"]["slabinfo"] = "Name  Objects Objsize\n"     # several caches: a list
    row = find(rows_of(data, model), "ctor", "slabinfo tool: SlabSiz")
    assert row.verdict == NOT_OBSERVED


def test_a_merged_cache_with_its_own_line_is_a_mismatch() -> None:
    data, model = recording("kmem_cache-merged")
    held = data["held"]["/proc/slabinfo"]
    data["held"]["/proc/slabinfo"] = held + (
        "kml_cache             20     32    256   16    1 : tunables    0    0    0 : "
        "slabdata      2      2      0\n")
    row = find(rows_of(data, model), "merged", "merged (no slabinfo line of its own)")
    assert (row.verdict, row.predicted, row.observed) == (MISMATCH, "yes", "no")


def test_a_leak_report_fails_the_unload() -> None:
    data, model = recording("kmem_cache")
    data["unload"]["log"] += (
        "[  100.000000] =============================================================\n"
        "[  100.000001] BUG kml_cache (Tainted: G           OE     ): Objects remaining in "
        "kml_cache on __kmem_cache_shutdown()\n")
    row = find(rows_of(data, model), "rmmod", "kernel reports (leaks, WARNs)")
    assert row.verdict == MISMATCH and "slab_leak" in str(row.observed)


def edit_free_after(data: dict[str, Any], test: str, edit: Callable[[list[int]], None]) -> None:
    """Change the free-list counts the module printed after allocating ``test``'s block."""
    pattern = re.compile(rf"(# {test}: alloc_zone=\S+ alloc_free_before=\S+ "
                         rf"alloc_free_after=)(\S+)")
    match = pattern.search(data["load"]["log"])
    assert match
    after = [int(x) for x in match.group(2).split(",")]
    edit(after)
    edit_log(data, "load", lambda log: pattern.sub(
        lambda m: m.group(1) + ",".join(map(str, after)), log, count=1))


def test_wrong_buddy_split_is_a_mismatch() -> None:
    data, model = recording("pages")
    test = "alloc_pages_nowait_o5"

    def split_order_6(after: list[int]) -> None:   # as if an order-6 block had been split
        after[5] += 1
        after[6] -= 1

    edit_free_after(data, test, split_order_6)
    row = find(rows_of(data, model), test, "buddy free lists after alloc")
    assert row.verdict == MISMATCH and "__rmqueue_smallest" in row.rule


def test_pcp_bound_is_a_real_bound() -> None:
    data, model = recording("pages")
    test = "alloc_pages_nowait_o2"

    def appear(after: list[int]) -> None:         # 1024 pages from nowhere during an order-2
        after[10] += 1

    edit_free_after(data, test, appear)
    rows = rows_of(data, model)
    assert find(rows, test, "buddy-free pages after alloc (pcp order)").verdict == OUT
    assert find(rows, test, "Δ(buddy + pcp pages) on alloc").verdict == MISMATCH


def test_wrong_devres_header_is_a_mismatch() -> None:
    data, model = recording("devres")
    edit_log(data, "load", lambda log: re.sub(
        r"(devm_kzalloc_100: object slab \S+ start \S+ pointer offset )40", r"\g<1>48", log))
    row = find(rows_of(data, model), "devm_kzalloc_100", "devres header (pointer offset)")
    assert (row.verdict, row.predicted, row.observed) == (MISMATCH, 40, 48)


def test_a_lost_vmalloc_line_is_a_mismatch() -> None:
    data, model = recording("vmalloc")
    text = data["held"]["/proc/vmallocinfo"]
    lines = text.splitlines()
    drop = next(i for i, x in enumerate(lines) if "kml_vmalloc_area+" in x and "vpages" in x)
    data["held"]["/proc/vmallocinfo"] = "\n".join(lines[:drop] + lines[drop + 1:]) + "\n"
    row = find(rows_of(data, model), "vmallocinfo kml_vmalloc_area",
               "lines (incl. nested page arrays)")
    assert row.verdict == MISMATCH


def test_mempool_reserve_semantics() -> None:
    data, model = recording("mempool")
    edit_log(data, "load", lambda log: re.sub(
        r"(# slab_pool_drain: requested=\d+ allocated=\d+ curr_nr=)0", r"\g<1>4", log))
    row = find(rows_of(data, model), "slab_pool_drain", "curr_nr (allocator starved)")
    assert (row.verdict, row.predicted) == (MISMATCH, 0)


def test_percpu_copies() -> None:
    data, _model = recording("percpu")
    rows = rows_of(data, Model("x86_64", "6.1", ncpus=2))      # a model of the wrong machine
    assert find(rows, "percpu_cpuN", "copies (possible CPUs)").verdict == MISMATCH


def test_slab_dump_parser() -> None:
    data, _model = recording("devres")
    obs: Observation = observation_from_dict(data)
    dump = slab_dump(obs.load, "devm_kzalloc_100")
    assert dump is not None and dump.cache == "kmalloc-192" and dump.offset == 40
    large = slab_dump(obs.load, "devm_kzalloc_10000")
    assert large is not None and large.cache is None
    assert slab_dump(obs.load, "no_such_test") is None


def test_a_recording_round_trips(tmp_path: Path) -> None:
    from kmodlab.check.replay import load_observation, save_observation

    path = FIXTURES / "x86_64-6.1" / "mempool.json.gz"
    obs = load_observation(path)
    for name in ("again.json", "again.json.gz"):
        save_observation(obs, tmp_path / name)
        again = load_observation(tmp_path / name)
        model = model_for(path)
        assert list(CHECKS["mempool"].compare(again, model)) == \
            list(CHECKS["mempool"].compare(obs, model))


@pytest.mark.parametrize("kernel", ["x86_64-5.10", "arm64-5.10", "i386-5.10"])
def test_a_5_10_kernel_is_not_a_6_1_kernel(kernel: str) -> None:
    """What the model answers differently for 5.10 is what its recordings show: 6.1's
    struct track (stack depot, 5.17), kmalloc-cg caches (5.14) or devres header would fail
    them (tables.TRACK_SIZE, MEMCG_KMALLOC_SYMBOL, DEVRES_NODE_SIZE)."""
    from dataclasses import replace

    debug, model = recording("kmem_cache-debug", kernel)
    kmalloc_run, _ = recording("kmalloc", kernel)
    devres_run, _ = recording("devres", kernel)
    assert not [r for r in rows_of(debug, model) if r.failed]
    six_one = Model(kernel.split("-")[0], "6.1").params
    for change, data, quantity in (
            ({"track_size": six_one.track_size}, debug, "slabinfo objsize"),
            ({"memcg_kmalloc": True}, kmalloc_run, "cache (kmem_dump_obj)"),
            ({"devres_header_size": six_one.devres_header_size}, devres_run,
             "devres header (pointer offset)")):
        if all(getattr(model.params, k) == v for k, v in change.items()):
            continue         # arm64: both devres headers round up to ARCH_KMALLOC_MINALIGN 128
        wrong = Model(*kernel.split("-"), ncpus=1)
        object.__setattr__(wrong, "params", replace(wrong.params, **change))
        failed = {r.quantity for r in rows_of(data, wrong) if r.failed}
        assert quantity in failed, (change, failed)


# ------------------------------------------------------------------ ioremap: what a bad run shows
def test_a_word_missing_from_the_host_file_is_a_mismatch() -> None:
    """The module's own read-back says all is well; the host file is the independent witness."""
    data, model = recording("ioremap")
    data["shared_memory"] = data["shared_memory"].replace("0x6b6d02a5 2500", "0x6b6d02a5 2499")
    row = find(rows_of(data, model), "host file", "non-zero word runs (offset, word, count)")
    assert row.verdict == MISMATCH and row.failed and "ivshmem" in row.rule


def test_no_shared_memory_is_not_observed() -> None:
    """A guest without the device (or a recording without the file) never passes."""
    data, model = recording("ioremap")
    data["shared_memory"] = None
    rows = rows_of(data, model)
    row = find(rows, "host file", "non-zero word runs (offset, word, count)")
    assert row.verdict == NOT_OBSERVED and row.failed


def test_an_area_without_its_guard_page_is_a_mismatch() -> None:
    data, model = recording("ioremap")
    text = data["held"]["/proc/vmallocinfo"]
    line = next(x for x in text.splitlines() if "phys=0x00000000fea04000 ioremap" in x)
    data["held"]["/proc/vmallocinfo"] = text.replace(line, line.replace(" 20480 ", " 16384 "))
    row = find(rows_of(data, model), "vmallocinfo phys=0xfea04000",
               "pci_iomap: ioremap line sizes (pages + guard)")
    assert (row.verdict, row.predicted, row.observed) == (MISMATCH, (20480,), (16384,))


def test_a_region_kept_after_unload_is_a_mismatch() -> None:
    data, model = recording("ioremap")
    data["after"]["iomem"] = data["between"]["iomem"]
    row = find(rows_of(data, model), "/proc/iomem kml_ioremap", "claims after unload")
    assert row.verdict == MISMATCH and row.observed == [(0xFEA00000, 1 << 20)]


def test_an_ioremap_area_left_mapped_is_a_mismatch() -> None:
    data, model = recording("ioremap")
    data["released"]["/proc/vmallocinfo"] = data["held"]["/proc/vmallocinfo"]
    row = find(rows_of(data, model), "vmallocinfo phys=0xfea00000", "ioremap: lines after unload")
    assert (row.verdict, row.observed) == (MISMATCH, 1)


def test_ioremap_windows_sharing_a_page_are_compared_together() -> None:
    """With 16 KiB pages offsets 100 and 10100 start in one page: two lines, one row."""
    data, _ = recording("ioremap", "arm64-6.12")
    rows = rows_of(data, Model("arm64", "6.12", ncpus=1, flavour="16k"))
    shared = [r for r in rows if r.quantity.startswith("ioremap+ioremap_wc: ioremap line sizes")]
    assert len(shared) == 1 and shared[0].predicted == (32768, 49152)


# ------------------------------------------------------------------ dma: what a bad run shows
def test_a_cma_buffer_outside_the_area_is_a_mismatch() -> None:
    """On arm64 the model puts buffers above a page in CMA; the boot log says where CMA is."""
    data, model = recording("dma", "arm64-6.12")
    data["before"]["cma"] = data["before"]["cma"].replace("0x000000005b600000",
                                                          "0x0000000010000000")
    row = find(rows_of(data, model), "dma_alloc_coherent_10000", "from CMA")
    assert (row.verdict, row.predicted, row.observed) == (MISMATCH, True, False)


def test_without_the_boot_line_cma_is_not_observed() -> None:
    data, model = recording("dma", "arm64-6.12")
    data["before"]["cma"] = ""
    row = find(rows_of(data, model), "dma_alloc_coherent_10000", "from CMA")
    assert row.verdict == NOT_OBSERVED and row.failed


def test_power_of_two_pages_from_cma_are_out_of_bound() -> None:
    """CMA hands out exact pages (257 for 1050000 bytes); a power-of-two block (512) is not it."""
    data, model = recording("dma", "arm64-6.12")
    # 2 x (4 + 512) pages taken instead of 2 x (3 + 257)
    data["held"]["/proc/meminfo"] = re.sub(r"CmaFree:\s+\d+", "CmaFree: 61024",
                                           data["held"]["/proc/meminfo"])
    row = find(rows_of(data, model), "meminfo", "ΔCmaFree while held (kB)")
    assert row.verdict == OUT and row.predicted == -2080


def test_buffers_kept_after_unload_are_out_of_bound() -> None:
    """remove() or devres forgot 2 MiB: the free pages after unload say so."""
    data, model = recording("dma", "x86_64-6.1")
    text = data["unload"]["after"]["/proc/zoneinfo"]
    m = re.search(r"pages free\s+(\d+)", text.split("zone    DMA32")[1])
    assert m is not None
    data["unload"]["after"]["/proc/zoneinfo"] = text.replace(
        m.group(0), m.group(0).replace(m.group(1), str(int(m.group(1)) - 512)))
    row = find(rows_of(data, model), "zoneinfo", "Δ(free + per-CPU list pages) after unload (kB)")
    assert row.verdict == OUT and row.failed


def test_a_buffer_that_came_dirty_is_a_mismatch() -> None:
    data, model = recording("dma", "x86_64-6.1")
    edit_log(data, "load", lambda log: re.sub(r"(# dma_alloc_coherent_100: .*zeroed=)1",
                                              r"\g<1>0", log))
    row = find(rows_of(data, model), "dma_alloc_coherent_100", "zeroed")
    assert row.verdict == MISMATCH and "memset" in row.rule


@pytest.mark.parametrize("kernel", ["x86_64-6.1", "x86_64-7.2"])
def test_vmstat_m_is_held_against_the_model(kernel: str) -> None:
    """procps' vmstat -m, run in the guest (recorded): its Pages column is objects per slab,
    for the module's cache and every kmalloc cache; a wrong figure is a mismatch, no table at
    all is not observed."""
    data, model = recording("kmem_cache-ctor", kernel)
    text = data["between"]["vmstat"]
    row = find(rows_of(data, model), "ctor", "vmstat -m: Pages (objects per slab, not pages)")
    assert row.verdict != MISMATCH and row.predicted == 36 and row.observed == 36
    line = next(x for x in text.splitlines() if x.startswith("kml_cache "))
    data["between"]["vmstat"] = text.replace(line, line[:-6] + "     2")   # pages holding
    row = find(rows_of(data, model), "ctor", "vmstat -m: Pages (objects per slab, not pages)")
    assert (row.verdict, row.observed) == (MISMATCH, 2)
    data["between"]["vmstat"] = ""
    row = find(rows_of(data, model), "ctor", "vmstat -m: Num (active objects)")
    assert row.verdict == NOT_OBSERVED


def test_vmstat_m_rows_cover_every_kmalloc_cache_once() -> None:
    data, model = recording("kmem_cache")
    rows = rows_of(data, model)
    kmalloc = {r.test for r in rows if r.test.startswith("vmstat -m kmalloc-")}
    normal = {n for n, c in model.kmalloc_caches().value.items() if c.type == "normal"}
    assert kmalloc == {f"vmstat -m {n}" for n in normal}
    assert all(r.verdict != MISMATCH for r in rows if r.test in kmalloc)
    other, _ = recording("kmem_cache-ctor")
    assert not [r for r in rows_of(other, model) if r.test.startswith("vmstat -m kmalloc-")]
