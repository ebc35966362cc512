"""The kernel's slabinfo tool: its report parsed from a real guest's output, the rows it gives
against the model, the guest build (a real static compile of a stand-in source), and the claim."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from kmodlab.check.rows import MISMATCH, Rows
from kmodlab.check.slabinfo_tool import own_cache_rows, report_command
from kmodlab.claims.judges import JUDGES
from kmodlab.claims.measure import slabinfo_test
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.errors import ConfigError, ProvisionError
from kmodlab.guest_tools import TOOLS, build_tool, compile_argv, guest_path, tool_source
from kmodlab.kernels.source import KernelSource
from kmodlab.model import Model
from kmodlab.observe.slabinfo_tool import SlabinfoReport, parse_report

FIXTURES = Path(__file__).parent.parent / "fixtures" / "slabinfo"


def real_report() -> SlabinfoReport:
    report = parse_report((FIXTURES / "x86_64-6.1-kmalloc-64.txt").read_text())
    assert report is not None
    return report


def test_the_report_of_one_cache_is_parsed_by_column() -> None:
    r = real_report()
    assert (r.name, r.order, r.objects, r.object_size, r.slot_size) == ("kmalloc-64", 0, 1533,
                                                                         64, 64)
    # "Total" and "Loss" appear twice: slabs and per-object in one column, bytes in the other
    assert (r.slabs, r.total_bytes, r.loss_per_object, r.loss_bytes) == (26, 106496, 0, 8384)
    assert (r.objects_per_slab, r.lpadd_bytes, r.padding_per_slab) == (64, 0, 0)
    assert r.total_bytes - r.used_bytes == r.loss_bytes


def test_a_listing_of_several_caches_is_not_a_report() -> None:
    assert parse_report((FIXTURES / "x86_64-6.1-list.txt").read_text()) is None
    assert parse_report("") is None
    text = (FIXTURES / "x86_64-6.1-kmalloc-64.txt").read_text()
    assert parse_report(text + text) is None          # two reports: the pattern matched two
    assert parse_report(text.replace("Lpadd:", "Lpad:")) is None   # a field missing


def test_the_command_shrinks_then_reports_on_the_cache_alone() -> None:
    cmd = report_command("kml_cache")
    assert cmd.index("/sys/kernel/slab/kml_cache/shrink") < cmd.index(guest_path("slabinfo"))
    assert cmd.endswith("'^kml_cache$'")


def _model_report(m: Model, size: int, n: int, ctor: bool) -> SlabinfoReport:
    """The report slabinfo would print for a cache of exactly the model's layout."""
    c = m.kmem_cache(size, ctor=ctor).value
    slabs = -(-n // c.objects_per_slab)
    slab_bytes = m.PAGE_SIZE << c.order
    return SlabinfoReport("kml_cache", 0, c.order, n, size, c.size, slab_bytes, c.size - size,
                          c.layout.align, slabs, slabs - 1, 1, 0, c.objects_per_slab,
                          slabs * slab_bytes, n * size, slabs * slab_bytes - n * size,
                          (c.size - size) * n,
                          (slab_bytes - c.objects_per_slab * c.size) * slabs)


def _rows(report: SlabinfoReport | None, m: Model) -> Rows:
    rows = Rows("kmem_cache", "ctor")
    cache = m.kmem_cache(100, ctor=True).value
    text = None if report is None else _render(report)
    own_cache_rows(rows, m, "ctor", text, cache, 50, "")
    return rows


def _render(r: SlabinfoReport) -> str:
    return (f"Slabcache: {r.name}  Aliases:  {r.aliases} Order :  {r.order} Objects: {r.objects}\n"
            f"Object : {r.object_size}  Total  : {r.slabs}  Sanity Checks : Off  Total: "
            f"{r.total_bytes}\n"
            f"SlabObj: {r.slot_size}  Full   : {r.full_slabs}  Redzoning     : Off  Used : "
            f"{r.used_bytes}\n"
            f"SlabSiz: {r.slab_bytes}  Partial: {r.partial_slabs}  Poisoning     : Off  Loss : "
            f"{r.loss_bytes}\n"
            f"Loss   : {r.loss_per_object}  CpuSlab: {r.cpu_slabs}  Tracking      : Off  Lalig: "
            f"{r.lalig_bytes}\n"
            f"Align  : {r.align}  Objects: {r.objects_per_slab}  Tracing       : Off  Lpadd: "
            f"{r.lpadd_bytes}\n")


def test_a_report_of_the_models_layout_passes_every_row() -> None:
    m = Model("x86_64", "6.1")
    rows = _rows(_model_report(m, 100, 50, True), m)
    assert rows.rows and not [r for r in rows.rows if r.failed]


@pytest.mark.parametrize("field", ["slot_size", "loss_per_object", "lpadd_bytes", "loss_bytes",
                                   "objects_per_slab"])
def test_a_figure_off_by_one_is_a_mismatch(field: str) -> None:
    m = Model("x86_64", "6.1")
    good = _model_report(m, 100, 50, True)
    bad = dataclasses.replace(good, **{field: getattr(good, field) + 1})
    failed = [r for r in _rows(bad, m).rows if r.failed]
    assert failed and all(r.verdict == MISMATCH for r in failed)


def test_no_report_fails_every_row() -> None:
    m = Model("x86_64", "6.1")
    rows = _rows(None, m)
    assert rows.rows and all(r.failed for r in rows.rows)


def test_the_compiler_is_the_registrys_for_each_arch(tmp_path: Path) -> None:
    spec = TOOLS["slabinfo"]
    assert compile_argv(spec, "x86_64", tmp_path / "s.c", tmp_path / "o")[0] == "gcc"
    assert compile_argv(spec, "arm64", tmp_path / "s.c", tmp_path / "o")[0] == \
        "aarch64-linux-gnu-gcc"
    assert compile_argv(spec, "i386", tmp_path / "s.c", tmp_path / "o")[0] == "i686-linux-gnu-gcc"
    assert "-static" in compile_argv(spec, "arm64", tmp_path / "s.c", tmp_path / "o")


def test_the_source_is_found_under_tools_mm_or_the_older_tools_vm(tmp_path: Path) -> None:
    spec = TOOLS["slabinfo"]
    (tmp_path / "tools" / "vm").mkdir(parents=True)
    (tmp_path / "tools" / "vm" / "slabinfo.c").write_text("int main(void){return 0;}\n")
    assert tool_source(spec, tmp_path) == tmp_path / "tools" / "vm" / "slabinfo.c"
    (tmp_path / "tools" / "mm").mkdir()
    (tmp_path / "tools" / "mm" / "slabinfo.c").write_text("int main(void){return 0;}\n")
    assert tool_source(spec, tmp_path) == tmp_path / "tools" / "mm" / "slabinfo.c"
    with pytest.raises(ProvisionError, match="slabinfo"):
        tool_source(spec, tmp_path / "nowhere")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host's gcc (host-packages.txt)")
def test_a_built_tool_is_cached_and_a_damaged_one_rebuilt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "linux"
    (tree / "tools" / "mm").mkdir(parents=True)
    (tree / "tools" / "mm" / "slabinfo.c").write_text(
        '#include <stdio.h>\nint main(void){puts("kml");return 0;}\n')
    source = KernelSource("6.12", "linux-source-6.12", "6.12.1-1", tree)
    first = build_tool("slabinfo", "x86_64", source)
    assert first.read_bytes()[:4] == b"\x7fELF"
    assert build_tool("slabinfo", "x86_64", source) == first     # cached
    first.write_bytes(b"damaged")
    again = build_tool("slabinfo", "x86_64", source)
    assert again.read_bytes()[:4] == b"\x7fELF"


def test_a_compile_error_names_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "linux"
    (tree / "tools" / "vm").mkdir(parents=True)
    (tree / "tools" / "vm" / "slabinfo.c").write_text("this is not C\n")
    source = KernelSource("6.1", "linux-source-6.1", "6.1.1-1", tree)
    with pytest.raises(ProvisionError, match="tools/vm/slabinfo.c"):
        build_tool("slabinfo", "x86_64", source)
    assert not list((tmp_path / "cache").rglob("slabinfo"))      # nothing half-made is kept


def test_an_unknown_tool_is_refused(tmp_path: Path) -> None:
    source = KernelSource("6.1", "linux-source-6.1", "6.1.1-1", tmp_path)
    with pytest.raises(ConfigError, match="known: slabinfo"):
        build_tool("vmstat", "x86_64", source)


def _claim_obs(own: SlabinfoReport, kmalloc_loss: int) -> Observations:
    kmalloc = dataclasses.replace(real_report(), name="kmalloc-128", object_size=128,
                                  slot_size=128, loss_per_object=kmalloc_loss)
    return Observations("r", "x86_64-6.1", 1, probes={"slab_waste_tool": {
        slabinfo_test("kml_cache"): dataclasses.asdict(own),
        slabinfo_test("kmalloc-128"): dataclasses.asdict(kmalloc)}})


def test_the_claim_is_true_when_slabinfo_shows_the_models_waste() -> None:
    m = Model("x86_64", "6.1")
    target = ModelTarget("x86_64", "6.1", m, None)
    judge = JUDGES["slabinfo_shows_wastage"]
    args = {"size": 100, "cache": "kml_cache", "probe": "slab_waste_tool"}
    found = judge.measured(target, _claim_obs(_model_report(m, 100, 50, True), 0), **args)
    assert found is not None and found.verdict == "true" and found.agrees
    assert "wastes 28 bytes it cannot see" in found.answer
    off = dataclasses.replace(_model_report(m, 100, 50, True), loss_per_object=0)
    found = judge.measured(target, _claim_obs(off, 0), **args)
    assert found is not None and found.verdict == "false" and not found.agrees
    assert judge.measured(target, Observations("r", "x86_64-6.1", 1), **args) is None
