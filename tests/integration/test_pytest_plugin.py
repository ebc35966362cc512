"""The pytest plugin against real guests: crashes, hangs and warnings are contained and reported.

Each test runs a small inner pytest session (pytester) with the plugin, on one kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel

pytest_plugins = ["pytester"]
DATA = Path(__file__).parent / "data"


def _run(pytester: pytest.Pytester, kernel: Kernel, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_subprocess(
        "--kmodlab-arch", kernel.arch, "--kmodlab-kernel", kernel.series, "-p", "no:cacheprovider",
        *args, timeout=600)


def test_crash_fails_the_test_and_the_next_test_gets_a_healthy_guest(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    result = _run(pytester, kernel, """
def test_1_panics(guest):
    guest.run("echo c > /proc/sysrq-trigger")

def test_2_works(guest):
    assert guest.run("echo alive").stdout == "alive\\n"
""")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*KernelCrash*panic*"])


def test_hang_is_reported_and_contained(pytester: pytest.Pytester, kernel: Kernel) -> None:
    result = _run(pytester, kernel, """
def test_1_hangs(guest):
    guest.run("sleep 600", timeout=2)

def test_2_works(guest):
    assert guest.run("true").ok
""")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*CommandTimeout*"])


def test_kernel_warning_fails_a_test_unless_expected(pytester: pytest.Pytester, kernel: Kernel) -> None:
    result = _run(pytester, kernel, f"""
import pytest
WARN_MODULE = {str(DATA / "warn_module")!r}

def test_1_warns(kmodule):
    kmodule(WARN_MODULE).load()

@pytest.mark.kmodlab(expect_warnings=True)
def test_2_expects_it(kmodule):
    kmodule(WARN_MODULE).load()
""")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*kernel warning during the test*", "*kmodlab test warning*"])
    # the report points at the line of the module's own source that warned
    source = next((DATA / "warn_module").glob("*.c"))
    line = 1 + next(i for i, text in enumerate(source.read_text().splitlines())
                    if "WARN" in text and "(" in text and not text.lstrip().startswith(("*", "/")))
    result.stdout.fnmatch_lines([f"*in your source: *[[]*] at {source}:{line}*"])


def test_failure_report_carries_the_kernel_log_and_a_readable_diff(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    result = _run(pytester, kernel, """
from kmodlab.assertions import assert_matches

def test_wrong_ksize(guest, kmodule, model):
    guest.run("echo kmodlab-marker-in-this-test > /dev/kmsg")
    load = kmodule("kmalloc", sizes=[160], gfp=["GFP_KERNEL"]).load()
    assert_matches(model.ksize(161), load.result("kmalloc_160_kernel").values["ksize"] + 1, "ksize")
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*model predicted*kernel showed*", "*rule: mm/*",
                                 "*kmodlab kernel log (this test)*", "*kmodlab-marker-in-this-test*"])


def test_markers_restrict_targets(pytester: pytest.Pytester, kernel: Kernel) -> None:
    other = "arm64" if kernel.arch == "x86_64" else "x86_64"
    result = _run(pytester, kernel, f"""
import pytest

@pytest.mark.kmodlab(arch="{other}")
def test_other_arch(guest):
    pass

@pytest.mark.kmodlab(kernel=">=6.5")
def test_new_kernels(model):
    assert model.version >= (6, 5)
""", "-rs")
    skipped = 2 if kernel.version < (6, 5) else 1
    result.assert_outcomes(passed=2 - skipped, skipped=skipped)
    result.stdout.fnmatch_lines([f"*test is for arch {other}*"])


def test_xdist_workers_own_their_guests_and_junit_counts_every_test(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    junit = pytester.path / "junit.xml"
    result = _run(pytester, kernel, """
import os

def test_a(guest):
    assert guest.run("uname -r").ok

def test_b(guest):
    assert guest.run("cat /proc/buddyinfo").ok

def test_c(kmodule):
    kmodule("percpu").load()
""", "-n", "2", f"--junitxml={junit}")
    result.assert_outcomes(passed=3)
    assert 'tests="3"' in junit.read_text() and 'failures="0"' in junit.read_text()


def test_assertion_failures_name_the_phase_the_cache_and_the_field(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    result = _run(pytester, kernel, """
from kmodlab.assertions import assert_ktap_passed, assert_slab_growth

def test_growth(kmodule):
    load = kmodule("kmem_cache", name="kml_msg", size=100, count=50,
                   flags=["SLAB_HWCACHE_ALIGN", "SLAB_NOLEAKTRACE"]).load()
    assert_ktap_passed(load)
    assert_slab_growth(load, "kml_msg", exactly=100000)
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        ("*phase load: cache kml_msg: active_objs grew by *, expected exactly 100000 "
         "(created during the phase, * now)*"),
        "*cache*active_objs*num_objs*num_slabs*objsize*",
        "*kml_msg*- -> *"])


def test_an_unknown_arch_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="def test_nothing(guest):\n    pass\n")
    result = pytester.runpytest_subprocess("--kmodlab-arch", "riscv64", "-p", "no:cacheprovider",
                                           timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: kmodlab: unknown architecture 'riscv64'; known: *"])


# --------------------------------------------------------------------------- the whole log
FLOOD_MODULE = str(DATA / "flood_module")
LATE_MODULE = str(DATA / "late_module")


def test_a_warning_deep_in_a_test_s_log_fails_it(pytester: pytest.Pytester,
                                                 kernel: Kernel) -> None:
    """The WARN comes after 3000 lines (~250 KB) of the same test's log: the old verdict read
    the first 20 KB and passed the test."""
    result = _run(pytester, kernel, f"""
def test_noisy_then_warns(kmodule):
    kmodule({FLOOD_MODULE!r}, lines=4000, warn_at=3000).load()
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*kernel warning during the test*",
                                 "*KB of kernel log before this ...]*",
                                 "*kmodlab warning after 3000 lines*"])


def test_a_flood_that_never_ends_is_a_flood_with_its_rate_not_a_hang(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    result = _run(pytester, kernel, f"""
def test_floods(kmodule):
    kmodule({FLOOD_MODULE!r}, lines=0).load(timeout=8)

def test_next_gets_a_healthy_guest(guest):
    assert guest.run("echo alive").stdout == "alive\\n"
""")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([("*flood: a command in the guest did not finish while the kernel "
                                 "printed without end (printk flood: * lines/s*")])
    result.stdout.no_fnmatch_line("*hang: a command in the guest did not finish*")


def test_a_delayed_report_names_the_module_and_the_test_that_loaded_it(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    """kml_late WARNs from its workqueue 8 s after test_a loaded it, during test_b; it cannot be
    unloaded, which is test_a's error.  The old plugin blamed test_b and kept the module
    silently."""
    result = _run(pytester, kernel, f"""
def test_a(kmodule):
    module = kmodule({LATE_MODULE!r}, delay_ms=8000)
    module.leak_check = False
    module.load()

def test_b(guest):
    # waits for the report, whenever it comes (no timed assertion)
    guest.run("until dmesg | grep -q 'kmodlab delayed warning'; do sleep 0.2; done", timeout=120)
""")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_a*",
        "*module kml_late was left loaded: rmmod failed (exit *)*",
        "*delayed report from kml_late, loaded by test_inner.py::test_a*"])
    result.stdout.fnmatch_lines(["*Workqueue: events kml_late_fn [[]kml_late[]]*"])


def test_a_delayed_report_after_the_last_test_fails_the_session(
        pytester: pytest.Pytester, kernel: Kernel) -> None:
    """The WARN comes 4 s after the only test loaded the module: after the test, after its
    teardown; the old plugin never looked again and the session passed."""
    result = _run(pytester, kernel, f"""
def test_a(kmodule):
    module = kmodule({LATE_MODULE!r}, delay_ms=4000)
    module.leak_check = False
    module.load()
""")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # both are errors at the teardown of the last test, in either order
    result.stdout.fnmatch_lines(["*module kml_late was left loaded*"])
    result.stdout.fnmatch_lines([
        "*the kernel reported a problem after the last test of the session*",
        "*delayed report from kml_late, loaded by test_inner.py::test_a*"])
