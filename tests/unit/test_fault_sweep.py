"""Fault injection's pure parts: the guest commands, reading what was injected, where the
sweep starts (the bisection past the module loader), and how runs become per-site verdicts."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from kmodlab.errors import ConfigError
from kmodlab.faults.injection import (
    arm_command,
    inject_command,
    injected_failure,
    parse_injected,
    require_fault_injection,
)
from kmodlab.faults.sweep import FaultRun, FaultSweep, locate_start
from kmodlab.observe.dmesg import find_events


def classifier(classes: list[str]):
    """where(n) over a list (call 1 is classes[0]); beyond it nothing is left to fail."""
    asked: list[int] = []

    def where(n: int) -> str:
        asked.append(n)
        return classes[n - 1] if n <= len(classes) else "after"
    return where, asked


def test_the_sweep_starts_at_the_modules_first_call_in_few_probes() -> None:
    classes = ["before"] * 220 + ["inside"] * 5 + ["after"] * 3
    where, asked = classifier(classes)
    assert locate_start(where, 2000) == 221
    assert len(set(asked)) <= 20


def test_a_call_without_a_stack_never_makes_the_sweep_start_late() -> None:
    # the module's first allocation has __GFP_NOWARN: no stack, so it could be anyone's
    classes = ["before"] * 219 + ["unknown", "inside", "inside", "after"]
    where, _ = classifier(classes)
    assert locate_start(where, 2000) == 220
    # an unknown call inside the loader's prefix is passed over once a later call is known
    classes = ["before"] * 50 + ["unknown"] + ["before"] * 100 + ["inside"] * 4
    where, _ = classifier(classes)
    assert locate_start(where, 2000) == 152


def test_random_sequences_start_no_later_than_the_first_call_past_the_loader() -> None:
    rng = random.Random(7)
    for _ in range(300):
        before = rng.randrange(0, 300)
        rest = rng.randrange(1, 40)
        truth = ["before"] * before + [rng.choice(["inside", "after"]) for _ in range(rest)]
        shown = [c if rng.random() > 0.2 else "unknown" for c in truth]
        where, _ = classifier(shown)
        start = locate_start(where, 5000)
        first_past = before + 1
        assert 1 <= start <= first_past, (before, shown)
        # and not absurdly early: past the known-before calls below the last unknown run
        known_before = [i + 1 for i, c in enumerate(shown) if c == "before"]
        if known_before and before > 20 and "unknown" not in shown[before - 5:before]:
            assert start > before - 5, (before, start, shown)


def test_locate_start_gives_up_at_max_nth() -> None:
    where, _ = classifier(["before"] * 5000)
    assert locate_start(where, 100) == 65


def test_guest_commands() -> None:
    arm = arm_command("failslab")
    for setting in ("failslab/ignore-gfp-wait", "fail_page_alloc/ignore-gfp-wait",
                    "failslab/times", "failslab/verbose"):
        assert f"/sys/kernel/debug/{setting}" in arm
    assert "echo 1 > /sys/kernel/debug/failslab/times" in arm
    assert "echo N > /sys/kernel/debug/failslab/cache-filter" in arm
    # the page allocator is not even counted while the slab allocator is swept
    assert "echo 99 > /sys/kernel/debug/fail_page_alloc/min-order" in arm
    pages = arm_command("fail_page_alloc")
    assert "echo 0 > /sys/kernel/debug/fail_page_alloc/min-order" in pages
    assert "echo Y > /sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem" in pages
    assert "echo Y > /sys/kernel/debug/failslab/cache-filter" in pages
    with pytest.raises(ConfigError, match="fault attributes"):
        arm_command("fail_futex")
    assert inject_command(3, "insmod /tmp/x.ko") == \
        "echo 3 > /proc/thread-self/fail-nth && exec insmod /tmp/x.ko"
    with pytest.raises(ConfigError, match="counts from 1"):
        inject_command(0, "true")


def test_parse_injected() -> None:
    assert parse_injected("failslab 1\nfail_page_alloc 0\n") == "fail_page_alloc"
    assert parse_injected("failslab 0\nfail_page_alloc 1\n") == "failslab"
    assert parse_injected("failslab 1\nfail_page_alloc 1\n") is None
    assert parse_injected("failslab \n") is None       # unreadable: nothing claimed


def test_a_kernel_without_fault_injection_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="--config fault-injection") as exc:
        require_fault_injection({"CONFIG_FAULT_INJECTION": "y"}, "x86_64-6.1")
    assert "CONFIG_FAILSLAB" in str(exc.value)
    require_fault_injection({k: "y" for k in ("CONFIG_FAULT_INJECTION", "CONFIG_FAILSLAB",
                                              "CONFIG_FAIL_PAGE_ALLOC",
                                              "CONFIG_FAULT_INJECTION_DEBUG_FS")}, "k")


def run(nth: int, site: str | None, outcome: str, frame: str = "f+0x1/0x2") -> FaultRun:
    return FaultRun("init", nth, "failslab", site, frame, outcome)


def test_sites_take_the_worst_outcome_of_their_runs() -> None:
    sweep = FaultSweep("m", "k", "init", complete=True, runs=[
        run(5, "m.c:10", "handled"), run(6, "m.c:10", "leaked"), run(7, "m.c:12", "handled"),
        run(8, None, "kernel")])
    sites = {s.site: s for s in sweep.sites}
    assert set(sites) == {"m.c:10", "m.c:12"}        # the kernel's own call is not a site
    assert sites["m.c:10"].outcome == "leaked" and sites["m.c:10"].runs == (5, 6)
    assert not sweep.ok and [s.site for s in sweep.unhandled] == ["m.c:10"]


def test_a_crash_outside_the_module_still_fails_and_an_incomplete_sweep_is_not_ok() -> None:
    sweep = FaultSweep("m", "k", "init", complete=True,
                       runs=[run(3, None, "crashed", "do_init_module+0x5/0x9")])
    assert [s.site for s in sweep.unhandled] == ["(kernel) do_init_module+0x5/0x9"]
    assert not FaultSweep("m", "k", "init", complete=False, runs=[run(1, "m.c:1", "handled")]).ok


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/dmesg/x86_64-6.1-fault-injection-crash.txt"


def test_an_injected_failure_is_an_event_of_its_own_and_no_complaint() -> None:
    """Recorded on the x86_64 6.1 fault-injection+debug-memory kernel: the injected failure's
    report (with its stack), then the KASAN report of the unchecked module writing through
    the NULL it got."""
    events = find_events(FIXTURE.read_text())
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["module_taint", "fault_injection", "kasan"], kinds
    injected = events[1]
    assert injected.complete and injected.ended_by == "end marker"
    assert not injected.is_complaint and not injected.is_crash
    failure = injected_failure(events)
    assert failure is not None and failure.attribute == "failslab"
    assert "ep_unchecked_init+0x23/0x1000 [kml_ep_unchecked]" in failure.text
    assert "do_init_module" in failure.text and "null-ptr-deref" not in failure.text


# --------------------------------------------------------------------------- one trial, faked

class _Result:
    def __init__(self, ok: bool = True, stdout: str = "") -> None:
        self.ok, self.exit_status, self.stdout, self.output = ok, 0 if ok else 1, stdout, stdout


class _Record:
    def __init__(self, events: list) -> None:
        self.command, self.events = _Result(), events


INJECTED = ("[    5.1] FAULT_INJECTION: forcing a failure.\n"
            "[    5.1] name failslab, interval 1, probability 0, space 0, times 1\n"
            "[    5.1] Call Trace:\n[    5.1]  <TASK>\n"
            "[    5.1]  m_init+0x1d/0x60 [m]\n[    5.1]  do_init_module+0x5/0x9\n"
            "[    5.1]  </TASK>\n")


class _Built:
    module_name, load_args, ko_path = "m", (), Path("/x/m.ko")

    def source_lines(self, text: str) -> list[str]:
        return ["m_init+0x1d/0x60 [m] at /x/m.c:7"] if "[m]" in text else []


def _faked(monkeypatch: pytest.MonkeyPatch, unload):
    from kmodlab.faults import sweep

    class Guest:
        def __init__(self, *_: object) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *_: object) -> None:
            pass

        def run(self, command: str, **_: object) -> _Result:
            return _Result(stdout="failslab 0\nfail_page_alloc 1\n" if "times" in command
                           and "echo failslab" in command else "")

        def push(self, *_: object, **__: object) -> None:
            pass

        def console_text(self) -> str:
            return INJECTED

    class Engine:
        def __init__(self, guest: object) -> None:
            pass

        def run(self, name: str, command: str, timeout: float) -> _Record:
            if name == "unload":
                return unload()
            return _Record(find_events(INJECTED))     # init coped: insmod succeeded

    monkeypatch.setattr(sweep, "Guest", Guest)
    monkeypatch.setattr(sweep, "PhaseEngine", Engine)
    setup = sweep._Setup(object(), _Built(), object(), 5.0, None, None, False)  # type: ignore[arg-type]
    return sweep, setup


def test_a_crash_while_unloading_after_the_failure_is_the_sites_verdict(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kmodlab.errors import KernelCrash

    def unload():
        raise KernelCrash("oops", "BUG: kernel NULL pointer dereference\n m_exit+0x5/0x9 [m]")

    sweep, setup = _faked(monkeypatch, unload)
    run, where = sweep._trial(setup, "init", 5, observe=True)
    assert (run.site, run.outcome, where) == ("m.c:7", "crashed", "inside")
    assert run.detail.startswith("after the failure, while unloading")


def test_a_hang_while_unloading_after_the_failure_is_the_sites_verdict(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kmodlab.errors import CommandTimeout

    def unload():
        raise CommandTimeout("rmmod did not finish in 5 s")

    sweep, setup = _faked(monkeypatch, unload)
    run, _ = sweep._trial(setup, "init", 5, observe=True)
    assert (run.site, run.outcome) == ("m.c:7", "hung")


@pytest.mark.parametrize("command", ["cat /x | wc -l", "a; b", "a && b", "a &", ""])
def test_a_command_that_is_not_one_program_is_refused(command: str) -> None:
    from kmodlab.faults.sweep import check_command

    with pytest.raises(ConfigError, match="one program"):
        check_command(command)
    check_command("dd if=/dev/x of=/dev/null bs=64 count=1")


def test_bad_requests_fail_before_any_kernel_is_built(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import kmodlab.kernels
    from kmodlab.cli import main

    def no_build(*_: object, **__: object):
        raise AssertionError("a kernel was provisioned for a request that had to be refused")

    monkeypatch.setattr(kmodlab.kernels, "provision_target", no_build)
    assert main(["faults", "/tmp", "--command", "cat /x | wc -l"]) == 2
    assert "one program" in capsys.readouterr().err
    with pytest.raises(SystemExit):             # argparse: --max-nth must be 1 or more
        main(["faults", "/tmp", "--max-nth", "0"])


def _leak(*frames: str, size: int = 16):
    from kmodlab.kmemleak import Unreferenced

    return Unreferenced("0xffff888001", size, "insmod", 90, frames)


def test_a_leak_inside_the_failed_kernel_call_is_the_kernels() -> None:
    # 6.1/6.12 mm/slub.c:sysfs_slab_add() leaks the kobject's name when
    # kobject_init_and_add() fails: a module calling kmem_cache_create() cannot free it, and
    # before this split a correct module was reported "leaked" at that call.
    from kmodlab.faults.sweep import _Setup, inside_failed_call

    setup = _Setup(object(), _Built(), object(), 5.0, None, None, True)  # type: ignore[arg-type]
    failed = "m_init+0x8d/0x232 [m] at /x/m.c:7 (in m_init)"
    kernels = _leak("__kmalloc_node_track_caller+0x5a/0x150", "kvasprintf+0x6f/0xf0",
                    "kobject_set_name_vargs+0x5a/0x110", "kobject_init_and_add+0x6e/0xc0",
                    "sysfs_slab_add+0x1a0/0x340", "__kmem_cache_create+0x3a0/0x5c0",
                    "kmem_cache_create_usercopy+0x1b8/0x330", "m_init+0x8d/0x232 [m]")
    # the module's own objects: from an allocator at the same call (an earlier turn of a
    # loop), or from another call
    same_call = _leak("kmem_cache_alloc+0x1a0/0x3b0", "m_init+0x8d/0x232 [m]", size=96)
    elsewhere = _leak("__kmalloc+0x4b/0x150", "kvasprintf+0x6f/0xf0",
                      "m_init+0x41/0x232 [m]", size=32)
    no_module = _leak("__kmalloc+0x4b/0x150", "load_module+0x100/0x2000")
    mine, theirs = inside_failed_call([kernels, same_call, elsewhere, no_module], failed, setup)
    assert theirs == [kernels]
    assert mine == [same_call, elsewhere, no_module]
    # a failed call the sweep could not place splits nothing
    assert inside_failed_call([kernels], "", setup) == ([kernels], [])


def test_a_site_is_the_innermost_line_even_when_inlined() -> None:
    # Before: the outer caller's line with a stray ")" ("m.c:88)") named every site of an
    # inlined helper, so the sites of one function merged into one.
    from kmodlab.faults.sweep import _module_frame, _Setup

    class Inlined(_Built):
        def source_lines(self, text: str) -> list[str]:
            return ["m_init+0x8d/0x232 [m] at /b/m.c:52 (inlined into m_init at /b/m.c:88)"]

    setup = _Setup(object(), Inlined(), object(), 5.0, None, None, False)  # type: ignore[arg-type]
    site, frame = _module_frame(setup, "m_init+0x8d/0x232 [m]")
    assert site == "m.c:52" and frame.startswith("m_init+0x8d")
