"""Kernels built from Debian's source with config fragments (kmodlab.kernels.kbuild), for real.

The ci tier builds x86_64 6.1 with ``debug-memory`` (the CI's one debug kernel: ~5 min on 2
cores, plus the source download on an empty cache); the full tier adds arm64 6.12.  Each built
kernel must carry every option it was asked for, boot in the harness's guest with its fragments'
boot parameters, build and run modules like a Debian kernel, and say what its detectors see.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from kmodlab.errors import KernelConfigError, KernelCrash
from kmodlab.guest import Guest
from kmodlab.kernels.kbuild import build_kernel, plan_build
from kmodlab.kernels.kconfig_check import KCONFIG_DIR, check_kernel_config
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import build_source_dir
from kmodlab.runner import run_module

pytestmark = pytest.mark.integration

BUILDS = [("x86_64", "6.1", "debug-memory")]
if os.environ.get("KMODLAB_TIER", "full") == "full":
    BUILDS.append(("arm64", "6.12", "debug-memory"))

DATA = Path(__file__).resolve().parent / "data" / "debug_kernels"
_progress: dict[str, list[tuple[str, float | None]]] = {}


@pytest.fixture(scope="module", params=BUILDS, ids=["-".join(b) for b in BUILDS])
def built(request: pytest.FixtureRequest) -> Kernel:
    arch, series, names = request.param
    seen: list[tuple[str, float | None]] = []
    kernel = build_kernel(arch, series, names, progress=lambda m, f: seen.append((m, f)))
    _progress[kernel.release] = seen
    return kernel


@pytest.fixture(scope="module")
def guest(built: Kernel):
    with Guest(built) as g:
        yield g


def test_every_requested_option_is_in_the_built_config(built: Kernel) -> None:
    plan = plan_build(built.arch, built.series, built.config_names)
    assert built.release == plan.release and built.root == plan.entry
    config = built.kconfig
    for req in plan.requested:
        assert req.accepts(config.get(req.option)), (req.option, config.get(req.option))
    assert config["CONFIG_KASAN"] == "y" and config["CONFIG_DEBUG_KMEMLEAK"] == "y"
    assert check_kernel_config(built) == []            # kmodlab's own requirements too
    # A real System.map (Debian ships a stub), and the built-in drivers the guest's /init loads.
    assert " T kmalloc_trace" in built.system_map.read_text() or \
        " T __kmalloc" in built.system_map.read_text()
    builtin = (built.modules_dir / "modules.builtin").read_text()
    assert "virtio_pci.ko" in builtin and "virtio_console.ko" in builtin


def test_a_fresh_build_reported_its_stages_and_unchanged_inputs_never_rebuild(
        built: Kernel) -> None:
    log = built.root / "build.log"
    mtime = log.stat().st_mtime_ns
    start = time.monotonic()
    again = build_kernel(built.arch, built.series, built.config_names)
    assert again == built and time.monotonic() - start < 30
    assert log.stat().st_mtime_ns == mtime
    seen = _progress.get(built.release, [])
    if any(m.startswith("compiling") for m, _ in seen):      # this session built it
        stages = [m.split(":")[0].split(" (")[0] for m, _ in seen]
        assert stages[0] == "configuring" and "compiling" in stages and "installing lib/modules" in stages
        fractions = [f for m, f in seen if m.startswith("compiling") and f is not None]
        assert fractions == sorted(fractions) and all(0 < f < 1 for f in fractions)


def test_an_option_kconfig_drops_is_refused_by_name(tmp_path: Path) -> None:
    """6.1's lib/Kconfig.debug: FAULT_INJECTION_STACKTRACE_FILTER depends on !X86_64, so asking
    for it on x86_64 is refused after the config step, naming the option and where it was asked,
    and nothing is compiled."""
    kconfig = tmp_path / "kconfig"
    shutil.copytree(KCONFIG_DIR, kconfig)
    (kconfig / "want-filter.config").write_text(
        "CONFIG_FAULT_INJECTION=y  # the framework\nCONFIG_FAULT_INJECTION_DEBUG_FS=y  # knobs\n"
        "CONFIG_FAULT_INJECTION_STACKTRACE_FILTER=y  # 6.1: depends on !X86_64\n")
    with pytest.raises(KernelConfigError) as info:
        build_kernel("x86_64", "6.1", "want-filter", directory=kconfig)
    text = str(info.value)
    assert "CONFIG_FAULT_INJECTION_STACKTRACE_FILTER: need y, found not set" in text
    assert "want-filter.config:3" in text and "Nothing was compiled" in text
    # Nothing but Kconfig's own programs was compiled, and no half entry is left behind.
    assert not plan_build("x86_64", "6.1", "want-filter", directory=kconfig).entry.exists()


def test_the_guest_boots_with_the_fragments_boot_parameters(guest: Guest, built: Kernel) -> None:
    assert guest.run("uname -r").stdout.strip() == built.release
    cmdline = guest.run("cat /proc/cmdline").stdout.split()
    assert set(built.boot_params) <= set(cmdline)
    assert guest.run("test -e /sys/kernel/debug/kmemleak").ok
    dmesg = guest.run("dmesg").stdout
    assert "KernelAddressSanitizer initialized" in dmesg
    assert guest.run("cat /sys/module/printk/parameters/ignore_loglevel").stdout == "Y\n"


def test_a_clean_module_runs_clean(guest: Guest, built: Kernel) -> None:
    run = run_module(guest, build_source_dir(DATA / "kml_clean", built))
    assert run.ok, run.problems()


def test_kasan_reports_an_out_of_bounds_write_at_its_line(built: Kernel) -> None:
    """A write one byte past a 120-byte kmalloc buffer (inside kmalloc-128's slack: silent on
    Debian's kernels) is a KASAN report; its frames name the source lines of the write and of
    the allocation.  A guest of its own: the report ends the guest's life."""
    module = build_source_dir(DATA / "kml_oob", built)
    with Guest(built) as guest, pytest.raises(KernelCrash) as info:
        run_module(guest, module)
    crash = info.value
    assert crash.kind == "kasan"
    assert "BUG: KASAN: slab-out-of-bounds in oob_init" in crash.excerpt
    assert "Write of size 1" in crash.excerpt
    source = (DATA / "kml_oob" / "kml_oob.c").read_text().splitlines()
    bug = next(i for i, text in enumerate(source, 1) if "kmodlab: the bug" in text)
    alloc = next(i for i, text in enumerate(source, 1) if "kmalloc(120" in text)
    lines = module.source_lines(crash.excerpt)
    assert any(line.endswith(f"kml_oob.c:{bug}") for line in lines), lines
    assert any(f"kml_oob.c:{alloc}" in line for line in lines), lines


def test_kmemleak_names_a_leak_too_small_for_proc(guest: Guest, built: Kernel) -> None:
    """One 120-byte object (far below the allocators' idle drift in /proc): kmemleak's scan after
    rmmod finds it, charged to the module's allocation site and line."""
    module = build_source_dir(DATA / "kml_small_leak", built)
    run = run_module(guest, module)
    assert run.leaks is not None and not run.ok
    [leak] = run.leaks.of_kind("kmemleak")
    source = (DATA / "kml_small_leak" / "kml_small_leak.c").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "kmodlab: the bug" in text)
    assert leak.count == 1 and leak.bytes == 128       # kmalloc-128's object
    assert "small_leak_init+" in leak.where and f"kml_small_leak.c:{line} " in leak.where
    assert not run.leaks.of_kind("slab")               # /proc cannot tell it from drift
    assert "kmemleak" in run.verdict
