"""Leaks nobody named are caught, on real kernels: the leak detector (kmodlab.leaks) through
run_module's verdict, ``assert_clean_unload()`` without arguments, ``kmodlab run`` and the lab
grader, on the small leaking modules of tests/integration/data/leaks (and no report for the
module that allocates nothing).

Narrow the matrix with ``--kmodlab-arch x86_64 --kmodlab-kernel 6.1``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kmodlab.assertions import KernelAssertionError, assert_clean_unload
from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel
from kmodlab.leaks import DEFAULT_TOLERANCES
from kmodlab.modules import build_source_dir
from kmodlab.runner import LoadedModule, ModuleRun, run_module

pytestmark = [pytest.mark.integration, pytest.mark.fault("false_pass")]   # the tally

DATA = Path(__file__).resolve().parent / "data" / "leaks"
PAGE = 4096


@pytest.fixture(scope="module")
def booted(kernel: Kernel):
    with Guest(kernel, cpus=2, memory_mb=1024) as g:
        yield g


def _about_1000(objects: int) -> bool:
    """1000 leaked kmalloc-4k objects, give or take the idle drift of one cache (measured up to
    32 KiB of kmalloc-4k either way: see kmodlab.leaks.DEFAULT_TOLERANCES)."""
    return abs(objects - 1000) <= DEFAULT_TOLERANCES.slab_bytes // PAGE


def _run(guest: Guest, kernel: Kernel, name: str, *args: str) -> ModuleRun:
    built = build_source_dir(DATA / name, kernel, list(args))
    run = run_module(guest, built)
    assert run.load.ok and run.unload is not None and run.unload.ok, run.problems()
    assert run.leaks is not None
    return run


def test_a_module_that_allocates_nothing_leaks_nothing(booted: Guest, kernel: Kernel) -> None:
    for _ in range(3):
        run = _run(booted, kernel, "kml_noleak")
        assert run.ok and run.leaks is not None and run.leaks.clean, run.verdict
        assert run.unload is not None and run.unload.footprint is not None
        assert run.unload.footprint.known          # /proc/modules and sysfs showed addresses


def test_kmalloc_leak_is_named_with_its_cache_and_size(booted: Guest, kernel: Kernel) -> None:
    run = _run(booted, kernel, "kml_kmalloc_leak")
    assert not run.ok
    assert run.leaks is not None
    (leak,) = run.leaks.of_kind("slab")
    assert leak.where == "kmalloc-4k" and _about_1000(leak.count), run.verdict
    assert leak.bytes == leak.count * 4096
    assert re.fullmatch(r"FAILED: leaked: \d+ objects in kmalloc-4k \([\d,]+ KiB\)",
                        run.verdict), run.verdict
    assert run.leaks.clean is False and not run.leaks.of_kind("pages")   # slab explains it


def test_assert_clean_unload_without_arguments_fails_on_the_leak(booted: Guest,
                                                                  kernel: Kernel) -> None:
    module = LoadedModule(booted, build_source_dir(DATA / "kml_kmalloc_leak", kernel,
                                                   ["count=300"]))
    module.load()
    unload = module.unload()
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(unload)
    first = str(exc.value).splitlines()[0]
    assert "left memory behind" in first and "objects in kmalloc-4k" in first, first
    clean = LoadedModule(booted, build_source_dir(DATA / "kml_noleak", kernel))
    clean.load()
    assert_clean_unload(clean.unload())


@pytest.mark.parametrize("from_init", [0, 1])
def test_vmalloc_leak_behind_a_raw_caller_address(booted: Guest, kernel: Kernel,
                                                  from_init: int) -> None:
    run = _run(booted, kernel, "kml_vmalloc_leak", f"from_init={from_init}")
    assert not run.ok and run.leaks is not None
    (leak,) = run.leaks.of_kind("vmalloc")
    function = "kml_vmalloc_leak_init" if from_init else "kml_vmalloc_leak_alloc"
    assert leak.where.startswith(function + "+0x") and leak.where.endswith(
        "[kml_vmalloc_leak]"), leak.where
    assert leak.bytes >= 8 << 20, leak.describe()
    areas = run.leaks.measurement.module_areas
    assert areas and all(a.entry.caller is None and a.entry.raw_caller for a in areas)
    # the kernel no longer names it: vmallocinfo shows a bare address
    assert "now shows the caller as 0x" in leak.describe()
    assert all("is in the module's" in a.how for a in areas)


def test_cache_never_destroyed(booted: Guest, kernel: Kernel) -> None:
    run = _run(booted, kernel, "kml_cache_leak")
    assert not run.ok and run.leaks is not None
    (leak,) = run.leaks.of_kind("cache")
    assert leak.where == "kml_leak_cache"
    assert "created while the module was loaded, never destroyed" in leak.describe()


def test_pages_leak(booted: Guest, kernel: Kernel) -> None:
    run = _run(booted, kernel, "kml_pages_leak")          # 1024 blocks of order 2: 16 MiB
    assert not run.ok and run.leaks is not None
    (leak,) = run.leaks.of_kind("pages")
    assert 4096 - 512 <= leak.count <= 4096 + 512, leak.describe()
    assert [x.kind for x in run.leaks.leaks] == ["pages"], run.verdict


def test_percpu_leak(booted: Guest, kernel: Kernel) -> None:
    run = _run(booted, kernel, "kml_percpu_leak")         # 256 x 4 KiB per CPU, 2 CPUs
    assert not run.ok and run.leaks is not None
    (leak,) = run.leaks.of_kind("percpu")
    # newly populated pages: all of it but what fitted in pages populated before
    assert 2 * 192 * PAGE <= leak.bytes <= 2 * 320 * PAGE, leak.describe()
    assert not run.leaks.of_kind("pages"), run.verdict     # per-CPU memory is accounted


def _series(kernel: Kernel) -> str:
    return f"{kernel.version[0]}.{kernel.version[1]}"


def test_kmodlab_run_fails_with_the_sizes_in_the_verdict(kernel: Kernel,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from kmodlab.cli import main

    argv = ["--arch", kernel.arch, "--kernel", _series(kernel)]
    assert main(["run", str(DATA / "kml_kmalloc_leak"), *argv]) == 1
    out, err = capsys.readouterr()
    verdict = re.search(r"leaked: (\d+) objects in kmalloc-4k \(([\d,]+) KiB\)", out)
    assert verdict is not None, out[-3000:]
    assert _about_1000(int(verdict.group(1)))
    assert int(verdict.group(2).replace(",", "")) == -(-int(verdict.group(1)) * 4096 // 1024)
    assert out.splitlines()[0].startswith("kml_kmalloc_leak on ") and "FAILED: leaked:" in out
    assert "kmodlab run: kml_kmalloc_leak: FAILED: leaked:" in err
    assert main(["run", str(DATA / "kml_vmalloc_leak"), *argv]) == 1
    out, _ = capsys.readouterr()
    assert "vmalloc area" in out and "kml_vmalloc_leak_alloc+0x" in out
    assert main(["run", str(DATA / "kml_noleak"), *argv]) == 0
    out, _ = capsys.readouterr()
    assert "kml_noleak on " in out and ": OK" in out.splitlines()[0]


# --------------------------------------------------------------------------- the lab grader

def _lab_copy(tmp_path: Path, lab_id: str, source: str, edit) -> tuple:  # type: ignore[no-untyped-def]
    from kmodlab.labs.lab import load_lab

    lab = load_lab(lab_id)
    sub = tmp_path / "submission"
    sub.mkdir()
    text = (lab.solution_dir / source).read_text()
    edited = edit(text)
    assert edited != text
    (sub / source).write_text(edited)
    for extra in lab.spec.submit:
        if extra != source:
            shutil.copy(lab.solution_dir / extra, sub / extra)
    return lab, sub


def _grade(lab, sub: Path, kernel: Kernel):  # type: ignore[no-untyped-def]
    from kmodlab.labs import GradeOptions, grade_submission
    from kmodlab.labs.schema import Target
    from kmodlab.paths import cache_dir

    options = GradeOptions(targets=[Target(arch=kernel.arch, kernel=kernel.series)],
                           build_cache=cache_dir("lab-builds"))
    return grade_submission(lab, sub, "leak-test", options)


def test_the_grader_finds_a_leak_in_a_cache_the_lab_did_not_name(kernel: Kernel,
                                                                 tmp_path: Path) -> None:
    """kmalloc_waste's no_leaks names the size class of the student's objects; a submission
    that also leaks 256 kmalloc-8k objects passed it before the shared detector."""
    lab, sub = _lab_copy(tmp_path, "kmalloc_waste", "waste.c", lambda text: text.replace(
        '\tkml_ktap_begin(&t, "load", 1);\n',
        '\tkml_ktap_begin(&t, "load", 1);\n\tfor (i = 0; i < 256; i++)\n'
        '\t\tif (!kmalloc(8192, GFP_KERNEL))\n\t\t\tbreak;\n'))
    result = _grade(lab, sub, kernel)
    leaks = next(c for c in result.checks if c.kind == "no_leaks")
    assert not leaks.passed, leaks
    assert re.search(r"2\d\d objects in kmalloc-8k", leaks.observed), leaks.observed
    notes = [n for t in result.targets for n in t.notes]
    assert any(n.startswith("leak check: leaked: ") and "kmalloc-8k" in n for n in notes), notes
    others = [c.name for c in result.checks if not c.passed and c.kind != "no_leaks"]
    assert not others, others


def test_the_grader_finds_a_cache_never_destroyed(kernel: Kernel, tmp_path: Path) -> None:
    lab, sub = _lab_copy(tmp_path, "slab_cache", "objcache.c", lambda text: text.replace(
        "\tkmem_cache_destroy(cache);\n", ""))
    result = _grade(lab, sub, kernel)
    by_kind = {c.kind: c for c in result.checks if c.kind in ("cache_destroyed", "no_leaks")}
    assert not by_kind["cache_destroyed"].passed
    assert "never destroyed" in by_kind["cache_destroyed"].message
    assert not by_kind["no_leaks"].passed
    assert "cache lab_hot_obj still exists" in by_kind["no_leaks"].observed
