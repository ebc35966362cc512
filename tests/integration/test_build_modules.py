"""Every allocator family builds warning-free for every kernel of the matrix, and runs in a guest.

The build tests need only the provisioned headers; the guest tests boot the kernel (2 CPUs, so
per-CPU code sees more than one CPU) and check each module's KTAP documents.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from kmodlab.errors import BuildError, ConfigError
from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel
from kmodlab.model import tables
from kmodlab.modules import MEASURED_FAMILIES, build, build_source_dir, parse_params
from kmodlab.observe import KtapDocument, parse_ktap
from kmodlab.runner import ModuleRun, run_module

pytestmark = pytest.mark.integration

FAMILY_NAMES = list(MEASURED_FAMILIES)   # bugs crash on purpose: test_bugs_family_build.py

# Non-default parameters: every optional section switched off or on, atomic masks, debug flags.
VARIANTS = {
    "kmalloc": [["krealloc=", "kvmalloc_sizes=", "zero=1", "count=3",
                 "gfp=GFP_NOWAIT,GFP_KERNEL|__GFP_RECLAIMABLE,GFP_DMA"]],
    "kmem_cache": [["ctor=1", "flags=SLAB_TYPESAFE_BY_RCU,SLAB_ACCOUNT", "gfp=GFP_ATOMIC",
                    "size=24", "align=32"],
                   ["flags=", "size=4000", "count=10"],
                   ["flags=SLAB_POISON,SLAB_RED_ZONE,SLAB_STORE_USER,SLAB_CACHE_DMA", "ctor=1",
                    "count=5"]],
    "mempool": [["kinds=page", "page_order=3", "extra=0", "resize_to=2"],
                ["kinds=slab", "min_nr=1"]],
    "vmalloc": [["apis=vzalloc", "sizes=1", "kmalloc_size=1"]],
    "percpu": [["sizes=32768", "align=4096", "increments=1000"]],
    "devres": [["kmalloc_sizes=", "page_order=none"], ["kzalloc_sizes=", "kmalloc_sizes=1,9000"]],
    "pages": [["max_order=10", "gfp=GFP_ATOMIC", "apis=alloc_pages", "zeroed_page=0"]],
}
VARIANT_CASES = [pytest.param(family, items, id=f"{family}-{i}")
                 for family, sets in VARIANTS.items() for i, items in enumerate(sets)]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_family_builds_without_warnings(kernel: Kernel, family: str) -> None:
    built = build(family, None, kernel)
    assert built.ko_path.is_file()
    assert built.warnings == (), f"{family} on {kernel.label}:\n" + "\n".join(built.warnings)
    assert " warning: " not in built.log
    # Built for this kernel, not just with its headers lying around.
    assert f"vermagic={kernel.release} ".encode() in built.ko_path.read_bytes()

    again = build(family, None, kernel)   # cached: no kbuild (its time is a benchmark figure)
    assert again.cached and again.ko_path == built.ko_path


BROKEN_C = """\
#include <linux/module.h>
static int __init broken_init(void)
{
\treturn undeclared_thing;
}
module_init(broken_init);
MODULE_LICENSE("GPL");
"""

HELLO_C = """\
#include <linux/module.h>
static int count = 1;
module_param(count, int, 0444);
static int __init hello_init(void)
{
\tpr_info("KTAP version 1\\n1..1\\n");
\tpr_info("# hello: count=%d\\n", count);
\tpr_info("ok 1 hello\\n");
\treturn 0;
}
static void __exit hello_exit(void) { }
module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
"""


def _tree(root: Path, name: str, source: str) -> Path:
    root.mkdir(parents=True)
    (root / "Kbuild").write_text(f"obj-m := {name}.o\n")
    (root / f"{name}.c").write_text(source)
    return root


def test_compile_error_names_the_source_line(kernel: Kernel, tmp_path: Path) -> None:
    src = _tree(tmp_path / "broken", "broken", BROKEN_C)
    with pytest.raises(BuildError) as exc:
        build_source_dir(src, kernel, force=True)
    msg = str(exc.value)
    assert "broken.c:4:" in msg and "undeclared_thing" in msg and "full build log" in msg


def test_bring_your_own_module_builds(kernel: Kernel, tmp_path: Path) -> None:
    built = build_source_dir(_tree(tmp_path / "hello", "hello", HELLO_C), kernel, ["count=3"])
    assert built.module_name == "hello" and built.load_args == ("count=3",)
    assert built.warnings == ()


# --- in a guest -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def booted(kernel: Kernel):
    with Guest(kernel, cpus=2, memory_mb=1024) as g:
        yield g


def _docs(run: ModuleRun, phase: str = "load") -> dict[str, KtapDocument]:
    """The run's KTAP documents by their kmodlab phase (from the ``# kmodlab:`` header)."""
    p = run.load if phase in ("load", "probe") else run.unload
    assert p is not None
    return {_phase_of(doc): doc for doc in p.ktap}


def _phase_of(doc: KtapDocument) -> str:
    """The ``phase=`` of the ``# kmodlab:`` header, wherever the parser attached it."""
    diags = list(doc.diagnostics) + (doc.results[0].diagnostics if doc.results else [])
    for d in diags:
        if d.name == "kmodlab" and d.values:
            return str(d.values["phase"])
    raise AssertionError(f"KTAP document at line {doc.line_no} has no '# kmodlab:' header")


def _values(doc: KtapDocument, name: str) -> dict[str, int | str]:
    return doc.find(name).values_by_name[name]


def _check_documents(run: ModuleRun, family: str) -> None:
    assert run.ok, f"{family}: load/unload not clean:\n{run.load.log}\n{run.unload and run.unload.log}"
    for phase in (run.load, run.unload):
        assert phase is not None and phase.ktap, f"{family}: no KTAP in phase {phase}"
        for doc in phase.ktap:
            assert doc.plan == len(doc.real_results), f"{family}: plan {doc.plan} != results"
            assert not doc.warnings, doc.warnings


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_family_runs_in_guest(booted: Guest, kernel: Kernel, family: str) -> None:
    built = build(family, None, kernel)
    run = run_module(booted, built)
    _check_documents(run, family)
    load = _docs(run)["load"]
    unload = _docs(run, "unload")["unload"]
    assert unload.real_results, "unload document is empty"

    if family == "kmalloc":
        consts = _values(load, "kmalloc_constants")
        v = _values(load, "kmalloc_160_kernel")
        assert v["ksize"] == (256 if consts["KMALLOC_MIN_SIZE"] == 128 else 192)
        assert _values(load, "kmalloc_8193_kernel")["large"] == 1
        assert _values(load, "kmalloc_160_atomic")["ctx"] == "atomic"
        assert _values(load, "kmalloc_160_kernel_dma")["zone"] == "DMA"
        assert _values(load, "kvmalloc_8388608")["vmalloc"] == 1
    elif family == "kmem_cache":
        v = _values(load, "kmem_cache_alloc")
        assert v["allocated"] == 100 and v["ksize"] == v["stride"] == 128  # 100 B, HWCACHE_ALIGN
        assert "kml_cache " not in booted.run("cat /proc/slabinfo").stdout  # destroyed
    elif family == "mempool":
        for kind in ("slab", "kmalloc", "page"):
            assert _values(load, f"{kind}_pool_drain")["curr_nr"] == 0
            assert _values(load, f"{kind}_pool_refill")["curr_nr"] == 4
    elif family == "vmalloc":
        v = _values(load, "vmalloc_8388608")
        assert v["pages"] == v["mapped"] == 2048 and v["guard_unmapped"] == 1
        assert _values(load, "kmalloc_contig")["discontig"] == 0
    elif family == "percpu":
        assert _values(load, "percpu_sum")["static"] == 2  # two CPUs, one increment each
    elif family == "devres":
        docs = _docs(run)
        assert _values(docs["probe"], "probe")["count"] == 1
        assert docs["load"].find("bound").ok
        assert "remove" in _docs(run, "unload")  # unload unbinds: .remove + devres release
    elif family == "pages":
        assert _values(load, "get_free_pages_kernel_o4")["aligned"] == 1
        assert _values(load, "get_free_pages_kernel_dma_o0")["zone"] == "DMA"


def _ktap_of(booted: Guest, command: str) -> list[KtapDocument]:
    marker = f"kmodlab-test-{secrets.token_hex(4)}"
    booted.run(f"echo {marker} > /dev/kmsg", must_succeed=True)
    result = booted.run(command)
    assert result.ok, result
    text = booted.run("dmesg", must_succeed=True).stdout
    assert marker in text, (f"marker {marker} missing from dmesg ({len(text)} chars); "
                            f"last lines:\n{text[-3000:]}")
    return parse_ktap(text[text.rindex(marker):], strict=True)


def test_devres_unbind_and_bind_through_sysfs(booted: Guest, kernel: Kernel) -> None:
    built = build("devres", None, kernel)
    driver = "/sys/bus/platform/drivers/kml_devres"
    booted.push(built.ko_path, "/tmp/kml_devres_sysfs.ko")
    load = _ktap_of(booted, "insmod /tmp/kml_devres_sysfs.ko")
    assert [d.ok for d in load] == [True, True]  # probe, load
    try:
        removed = _ktap_of(booted, f"echo kml_devres > {driver}/unbind")
        assert len(removed) == 1 and removed[0].ok
        assert [r.name for r in removed[0].results] == ["remove_called", "release_order", "released_all"]
        assert not booted.run(f"test -e {driver}/kml_devres").ok  # unbound
        probed = _ktap_of(booted, f"echo kml_devres > {driver}/bind")
        assert len(probed) == 1 and probed[0].ok
        assert _values(probed[0], "probe")["count"] == 2
    finally:
        unload = _ktap_of(booted, "rmmod kml_devres")
    assert [d.ok for d in unload] == [True, True]  # remove, unload


def test_bring_your_own_module_gets_its_params(booted: Guest, kernel: Kernel, tmp_path: Path) -> None:
    built = build_source_dir(_tree(tmp_path / "hello", "hello", HELLO_C), kernel, ["count=3"])
    run = run_module(booted, built)
    assert run.ok
    assert run.load.ktap[0].find("hello").values["count"] == 3


@pytest.mark.parametrize(("family", "items"), VARIANT_CASES)
def test_variant_builds_and_runs(booted: Guest, kernel: Kernel, family: str,
                                 items: list[str]) -> None:
    built = build(family, parse_params(family, items), kernel)
    assert built.warnings == (), "\n".join(built.warnings)
    _check_documents(run_module(booted, built), family)


def test_slab_no_merge_where_it_exists(booted: Guest, kernel: Kernel) -> None:
    params = parse_params("kmem_cache", ["flags=SLAB_NO_MERGE", "name=kml_nomerge"])
    if not tables.since("SLAB_NO_MERGE", kernel.version):
        with pytest.raises(ConfigError, match="SLAB_NO_MERGE exists from Linux 6.5"):
            build("kmem_cache", params, kernel)
        return
    built = build("kmem_cache", params, kernel)
    assert built.warnings == ()
    run = run_module(booted, built)
    _check_documents(run, "kmem_cache")
    # Unmergeable: it has its own /proc/slabinfo line instead of hiding behind an alias.
    assert "kml_nomerge" in run.load.after.raw["/proc/slabinfo"]
