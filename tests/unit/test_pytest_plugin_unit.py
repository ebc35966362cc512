"""The pytest plugin without QEMU: option checking against the registry, the matrix, and the
hook wrappers' containment (a fake guest writes to a console log the way a real one does).

Each test runs a small inner pytest session in-process (pytester); the fake guests stand in for
:class:`kmodlab.guest.Guest` inside the real :class:`kmodlab.pool.GuestPool`, so replacing a
guest a test left crashed or hung is the pool's real code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab import pytest_plugin, registry

pytest_plugins = ["pytester"]

# The inner session's conftest: every kernel-facing fixture of the plugin is kept except the
# two that would provision a kernel or boot QEMU.
FAKE_CONFTEST = '''
import itertools
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import kmodlab.guest
import kmodlab.pool
from kmodlab.guest import GuestState

NUMBERS = itertools.count(1)


class FakeGuest:
    def __init__(self, kernel, options):
        self.kernel, self.options = kernel, options
        self.number = next(NUMBERS)
        self.console_log = Path(os.getcwd()) / f"console-{os.getpid()}-{self.number}.log"
        self.state = GuestState.OFF
        self.clock = 1.0

    def start(self):
        self.console_log.write_text(f"[    0.500000] guest {self.number} booted\\n")
        self.state = GuestState.READY
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.state = GuestState.STOPPED

    @property
    def healthy(self):
        return self.state == GuestState.READY

    def kmsg(self, *lines):
        with open(self.console_log, "a") as fh:
            for line in lines:
                self.clock += 0.001
                fh.write(f"[{self.clock:12.6f}] {line}\\n")

    def run(self, command, timeout=30.0, must_succeed=False, isolate=True):
        """Only the harness's markers (echo 'M' > /dev/kmsg) reach this fake."""
        m = re.fullmatch(r"echo '([^']*)' > /dev/kmsg", command)
        if m:
            self.kmsg(m.group(1))
        return SimpleNamespace(ok=True, exit_status=0, stdout="", output="")


@pytest.fixture(scope="session", autouse=True)
def _fake_guests():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kmodlab.pool, "Guest", FakeGuest)
        mp.setattr(kmodlab.guest, "Guest", FakeGuest)
        yield


@pytest.fixture(scope="session")
def kmodlab_kernel(kmodlab_target):
    return SimpleNamespace(arch=kmodlab_target.arch, release=kmodlab_target.kernel + "-fake",
                           label=kmodlab_target.label, series=kmodlab_target.series)
'''

WARNING = ('"------------[ cut here ]------------", '
           '"WARNING: CPU: 0 PID: 180 at mm/page_alloc.c:4723 __alloc_pages+0x2c1/0x340", '
           '"---[ end trace 0000000000000000 ]---"')


def _reports(reprec: pytest.HookRecorder) -> dict[str, pytest.TestReport]:
    """The call-phase report of each test, by test function name."""
    return {r.nodeid.split("::")[-1].split("[")[0]: r
            for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"}


# --------------------------------------------------------------------------- hook wrappers

def test_kernel_problems_fail_passing_tests_and_broken_guests_are_replaced(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_inner=f"""
import pytest
from kmodlab.guest import GuestState

def test_1_warns(guest):
    assert guest.number == 1
    guest.kmsg({WARNING})

@pytest.mark.kmodlab(expect_warnings=True)
def test_2_expects_a_warning(guest):
    assert guest.number == 1
    guest.kmsg({WARNING})

def test_3_panics_without_noticing(guest):
    guest.kmsg("Kernel panic - not syncing: sysrq triggered crash")
    guest.state = GuestState.CRASHED

def test_4_gets_a_new_guest(guest):
    assert guest.number == 2
    guest.kmsg("only in test 4")

def test_5_hangs(guest):
    guest.state = GuestState.BROKEN

def test_6_fails_by_itself(guest):
    assert guest.number == 3
    guest.kmsg("marker of test 6")
    assert 1 == 2, "the test's own failure"

def test_7_no_guest():
    pass
""")
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=3, failed=4)
    reports = _reports(reprec)
    assert reports["test_2_expects_a_warning"].passed and reports["test_4_gets_a_new_guest"].passed

    warned = reports["test_1_warns"]
    assert "kernel warning during the test" in warned.longreprtext
    assert "mm/page_alloc.c:4723" in warned.longreprtext
    assert "crash (panic) during the test" in reports["test_3_panics_without_noticing"].longreprtext
    assert "hang: a command in the guest did not finish" in reports["test_5_hangs"].longreprtext

    # A test's own failure stays its failure, with the kernel log of that test (only) attached.
    own = reports["test_6_fails_by_itself"]
    assert "the test's own failure" in own.longreprtext
    assert "kernel warning" not in own.longreprtext
    sections = dict(own.sections)
    assert "marker of test 6" in sections["kmodlab kernel log (this test)"]
    assert "only in test 4" not in sections["kmodlab kernel log (this test)"]
    assert sections["kmodlab console log"].endswith("-3.log")
    # Passing tests and tests without a guest get no kernel-log sections.
    for name in ("test_2_expects_a_warning", "test_7_no_guest"):
        assert not [s for s in reports[name].sections if s[0].startswith("kmodlab")]


def test_a_kernel_verdict_reads_as_an_assertion_in_the_terminal(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_inner=f"""
def test_warns(guest):
    guest.kmsg({WARNING})
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: kernel warning during the test*",
                                 "*WARNING: CPU: 0 PID: 180 at mm/page_alloc.c:4723*",
                                 "*kmodlab kernel log (this test)*"])


def test_xfail_and_skip_pass_through_the_wrappers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_inner=f"""
import pytest

@pytest.mark.xfail(reason="the kernel warns here", strict=True)
def test_xfail_on_a_warning(guest):
    guest.kmsg({WARNING})

def test_skips(guest):
    guest.kmsg({WARNING})
    pytest.skip("not today")
""")
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(skipped=2)
    assert _reports(reprec)["test_xfail_on_a_warning"].wasxfail == "the kernel warns here"


# --------------------------------------------------------------------------- options and matrix

def test_defaults_come_from_the_registry(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_inner="""
def test_target(kmodlab_target):
    pass
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*test_target[[]{registry.default_target().label}[]]*"])


def test_options_make_a_matrix_of_canonical_targets(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_inner="""
def test_target(kmodlab_target):
    pass
""")
    arches = registry.arch_names()
    series = registry.series_names()
    args = ["-p", "no:cacheprovider", "--collect-only", "-q"]
    for arch in arches:
        args += ["--kmodlab-arch", arch]
    args += ["--kmodlab-arch", "amd64"]   # an alias of x86_64: no second copy of it
    for s in series:
        args += ["--kmodlab-kernel", s]
    result = pytester.runpytest(*args)
    assert result.ret == 0
    expected = [t.label for t in registry.matrix(arches, series)]
    collected = [line.split("[", 1)[1].rstrip("]") for line in result.stdout.lines
                 if "::test_target[" in line]
    assert collected == expected


@pytest.mark.parametrize(("args", "ini", "named"), [
    (["--kmodlab-arch", "riscv64"], "", ("riscv64", *registry.arch_names())),
    (["--kmodlab-kernel", "4.14"], "", ("4.14", *registry.series_names())),
    (["--kmodlab-flavour", "64k"], "", ("64k", *registry.flavour_names())),
    ([], "kmodlab_arch = sparc\n", ("sparc", *registry.arch_names())),
    ([], "kmodlab_kernel =\n    6.1\n    4.19\n", ("4.19", *registry.series_names())),
    (["--kmodlab-shard", "5/4"], "", ("5/4", "I/N")),
    ([], "kmodlab_transport = telnet\n", ("telnet", "serial", "ssh")),
], ids=["arch", "kernel", "flavour", "ini-arch", "ini-kernel", "shard", "ini-transport"])
def test_unknown_names_are_one_usage_error_naming_the_known_ones(
        pytester: pytest.Pytester, args: list[str], ini: str, named: tuple[str, ...]) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}")
    pytester.makepyfile(test_inner="def test_nothing():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    for name in named:
        assert name in result.stderr.str(), name


def test_the_validation_function_raises_a_usage_error(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig("--kmodlab-arch", "riscv64", "--kmodlab-kernel", "6.1")
    with pytest.raises(pytest.UsageError, match="unknown architecture 'riscv64'; known: "):
        pytest_plugin.configured_targets(config)
    config = pytester.parseconfig("--kmodlab-arch", "aarch64")
    assert pytest_plugin.configured_targets(config) == [
        registry.target("arm64", registry.default_target().kernel)]


def test_help_lists_the_registry_choices(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nkmodlab_arch = not-an-arch\n")   # --help works regardless
    result = pytester.runpytest("--help")
    assert result.ret == 0
    text = " ".join(result.stdout.str().split())
    assert f"one of: {', '.join(registry.arch_names())}" in text
    assert f"one of: {', '.join(registry.series_names())}" in text
    assert f"one of: {', '.join(registry.flavour_names())}" in text
    assert f"(default {registry.default_target().arch})" in text


def test_markers_restrict_targets(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST)
    arch = registry.default_target().arch
    other = next(a for a in registry.arch_names() if a != arch)
    pytester.makepyfile(test_inner=f"""
import pytest

@pytest.mark.kmodlab(arch="{other}")
def test_other_arch(guest):
    pass

@pytest.mark.kmodlab(arch="{arch}", kernel=">=1.0")
def test_this_arch(guest):
    pass

@pytest.mark.kmodlab(kernel="newer than 6")
def test_bad_constraint(guest):
    pass
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--kmodlab-arch", arch)
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*kmodlab marker of *test_bad_constraint*: bad kernel constraint*"])
    result.stdout.fnmatch_lines([f"*test is for arch {other}, target is {arch}*"])
    assert "During handling" not in result.stdout.str()


def test_shards_split_the_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="\n".join(f"def test_{i}():\n    pass\n" for i in range(12)))
    counts = []
    for index in (1, 2, 3):
        result = pytester.runpytest("-p", "no:cacheprovider", "--kmodlab-shard", f"{index}/3")
        counts.append(result.parseoutcomes().get("passed", 0))
    assert sum(counts) == 12


# --------------------------------------------------------------------------- the whole log
# Fake modules for the kmodule fixture: a "stuck" one cannot be unloaded (rmmod fails, as for a
# module without an exit function); a guest can hold a report back until its n-th marker.
FAKE_MODULES = '''
import kmodlab.testing


class FakeModule:
    def __init__(self, guest, name, stuck):
        self.guest, self.stuck, self.loaded = guest, stuck, False
        self.built = SimpleNamespace(module_name=name, source_lines=lambda report: [])

    def load(self):
        self.guest.kmsg(f"{self.built.module_name}: loading out-of-tree module taints kernel.")
        self.loaded = True

    def unload(self):
        ok = not self.stuck
        self.loaded = not ok
        output = "" if ok else f"rmmod: can't unload module '{self.built.module_name}': busy"
        return SimpleNamespace(command=SimpleNamespace(ok=ok, exit_status=0 if ok else 1,
                                                       output=output))


def fake_factory(guest, registry):
    def make(name, stuck=False):
        module = FakeModule(guest, name, stuck)
        registry.append(module)
        return module
    return make


@pytest.fixture(scope="session", autouse=True)
def _fake_modules():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kmodlab.testing, "module_factory", fake_factory)
        mp.setattr(kmodlab.testing, "SETTLE_SECONDS", 0)
        yield
'''

DELAYED = (Path(__file__).resolve().parent.parent / "fixtures" / "dmesg" /
           "x86_64-6.1-delayed-warning.txt").read_text().splitlines()
DELAYED_TEXTS = repr([line.split("] ", 1)[1] for line in DELAYED])   # a real capture


def test_a_delayed_report_is_charged_to_the_test_that_loaded_the_module(
        pytester: pytest.Pytester) -> None:
    """kml_late (left loaded by test_a: rmmod fails) WARNs from its workqueue during test_b.
    The old plugin failed test_b as if it were its own warning and kept the module silently."""
    pytester.makeconftest(FAKE_CONFTEST + FAKE_MODULES)
    pytester.makepyfile(test_inner=f"""
def test_a(kmodule):
    kmodule("kml_late", stuck=True).load()

def test_b(guest):
    guest.kmsg(*{DELAYED_TEXTS})

def test_c(kmodule):
    kmodule("kml_fine").load()
""")
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reports = {(r.nodeid.split("::")[-1].split("[")[0], r.when): r
               for r in reprec.getreports("pytest_runtest_logreport")}
    assert reports[("test_a", "call")].passed
    teardown = reports[("test_a", "teardown")]
    assert teardown.failed and ("module kml_late was left loaded: rmmod failed (exit 1): "
                                "rmmod: can't unload module 'kml_late': busy") in teardown.longreprtext
    b = reports[("test_b", "call")]
    assert b.failed and "delayed report from kml_late, loaded by test_inner.py::test_a[" \
        in b.longreprtext
    assert "Workqueue: events kml_late_fn [kml_late]" in b.longreprtext
    assert reports[("test_c", "call")].passed and reports[("test_c", "teardown")].passed


def test_a_report_after_the_last_test_fails_the_session(pytester: pytest.Pytester) -> None:
    """The report comes only when the session ends (the guest prints it before the third
    marker: the test's, its teardown's, the session's).  The old plugin never looked."""
    pytester.makeconftest(FAKE_CONFTEST + FAKE_MODULES + f'''

@pytest.fixture
def later(guest):
    """Print the delayed WARN just before the guest's n-th marker from now."""
    original = guest.run
    count = {{"n": 0}}

    def run(command, **kw):
        count["n"] += 1
        if count["n"] == 3:
            guest.kmsg(*{DELAYED_TEXTS})
        return original(command, **kw)

    guest.run = run
    return guest
''')
    pytester.makepyfile(test_inner="""
def test_a(kmodule, later):
    kmodule("kml_late").load()
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_a*",
        "*the kernel reported a problem after the last test of the session:*",
        ("*delayed report from kml_late, loaded by test_inner.py::test_a* printed after the last "
        "test:*")])


def test_a_failing_test_s_log_is_judged_with_it_not_left_to_the_next(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_CONFTEST + FAKE_MODULES)
    pytester.makepyfile(test_inner=f"""
def test_a(guest):
    guest.kmsg({WARNING})
    assert False, "its own failure"

def test_b(guest):
    pass
""")
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reports = _reports(reprec)
    assert reports["test_b"].passed
    sections = dict(reports["test_a"].sections)
    assert "kernel warning during the test" in sections["kmodlab kernel verdict (this test)"]


def test_config_fragments_from_the_option_the_ini_and_the_marker(pytester: pytest.Pytester) -> None:
    """--kmodlab-config / kmodlab_config give every target the fragments; a kmodlab(config=...)
    marker gives its test's targets more; a fragment that cannot apply to a target (16K pages on
    x86_64) leaves that target out, as pairs Debian does not build are."""
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile(test_inner="""
import pytest

def test_plain(kmodlab_target):
    pass

@pytest.mark.kmodlab(config="fault-injection")
def test_marked(kmodlab_target):
    pass

@pytest.mark.kmodlab(config="pagesize-16k")
def test_arm64_only(kmodlab_target):
    pass
""")
    base = ["-p", "no:cacheprovider", "--collect-only", "-q", "--kmodlab-arch", "x86_64",
            "--kmodlab-arch", "arm64", "--kmodlab-kernel", "6.12"]
    result = pytester.runpytest(*base, "--kmodlab-config", "debug-memory")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    ids = sorted(line.split("::", 1)[1] for line in result.stdout.lines if "::test_" in line)
    assert ids == ["test_arm64_only[arm64-6.12+debug-memory+pagesize-16k]",
                   "test_marked[arm64-6.12+debug-memory+fault-injection]",
                   "test_marked[x86_64-6.12+debug-memory+fault-injection]",
                   "test_plain[arm64-6.12+debug-memory]", "test_plain[x86_64-6.12+debug-memory]"]
    pytester.makeini("[pytest]\nkmodlab_config = slub-debug\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert f"test_plain[{registry.default_target().label}+slub-debug]" in result.stdout.str()
    # An unknown fragment is one usage error naming the known ones.
    result = pytester.runpytest("-p", "no:cacheprovider", "--kmodlab-config", "kasan")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown kernel config fragment 'kasan'" in result.stderr.str()
    assert "debug-memory" in result.stderr.str()
