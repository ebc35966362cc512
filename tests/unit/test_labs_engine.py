"""The lab grader's run (kmodlab.labs.engine.SubmissionRun) on the shared phase engine, without
a guest: its phases, bounded logs and notes, console salvage, and how it classifies a kernel
report (a lockup is a hang, anything else a crash) through kmodlab.observe.dmesg."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import CommandTimeout, KernelCrash
from kmodlab.labs.engine import MARKER_PREFIX, HarnessFault, SubmissionRun
from kmodlab.labs.lab import load_lab
from kmodlab.phases import OVERFLOW_NOTE, PhaseEngine

try:
    from ._fake_guest import KTAP, FakeGuest, printing
except ImportError:  # tests/unit is a plain directory
    from _fake_guest import KTAP, FakeGuest, printing  # type: ignore[no-redef]

DMESG = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"


def submission(guest: FakeGuest | None = None, **limits: int) -> SubmissionRun:
    lab = load_lab("kmalloc_waste")
    for key, value in limits.items():
        setattr(lab.spec.limits, key, value)
    run = SubmissionRun(lab, None, None, {})  # type: ignore[arg-type]
    if guest is not None:
        run.guest = guest  # type: ignore[assignment]
        run.engine = PhaseEngine(guest, log_bytes=lab.spec.limits.dmesg_bytes,  # type: ignore[arg-type]
                                 shrink=lab.spec.shrink_slabs, marker_prefix=MARKER_PREFIX)
    return run


def test_a_step_is_a_phase_of_the_engine(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)
    guest.printk("an earlier run's line")
    guest.on_command = printing("kml_waste: loading out-of-tree module taints kernel.", *KTAP)
    run = submission(guest)
    result = run._phase(guest, "load", "insmod '/tmp/kmodlab-lab/kml_waste.ko'", 15)  # type: ignore[arg-type]
    assert result.ok and "earlier" not in run.obs.phase_logs["load"]
    assert [d.ok for d in run.obs.ktap] == [True] and run.obs.events[0].kind == "module_taint"
    assert "load" in run.obs.seconds and run.obs.notes == []
    assert run.engine is not None and run.engine.current is not None
    assert run.engine.current.marker.startswith("kmodlab-lab-load-")


def test_snapshots_shrink_every_cache_when_the_lab_asks(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)
    run = submission(guest)
    assert run.spec.shrink_slabs
    run._snapshot(guest)  # type: ignore[arg-type]
    assert guest.commands[-2].startswith("for f in /sys/kernel/slab/*/shrink;")


def test_the_phase_log_kept_is_bounded_by_the_lab_and_ktap_found_in_all_of_it(
        tmp_path: Path) -> None:
    """3000 lines inside the KTAP block: the text kept is bounded by dmesg_bytes, the KTAP is
    read from the whole log (the old read kept the last 4096 bytes: no KTAP header, no
    document)."""
    guest = FakeGuest(tmp_path, ring_bytes=6000)
    guest.on_command = printing(*KTAP[:3], *(f"flood {i}" for i in range(3000)), KTAP[3])
    run = submission(guest, dmesg_bytes=4096)
    run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    log = run.obs.phase_logs["load"]
    assert len(log.encode()) <= 4096 + 200 and "flood 2999" in log and "flood 0\n" in log
    assert "every line was classified" in run.obs.notes[0]
    assert [d.ok for d in run.obs.ktap] == [True]
    assert run.obs.ktap[0].find("alloc").values == {"ksize": 128, "waste": 28}


def test_lost_marker_note_when_nothing_shows_it(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path, ring_bytes=6000)
    flood = printing(*(f"flood {i}" for i in range(2000)), console=False)

    def console_lost(guest: FakeGuest, command: str) -> int:
        guest.console_log.write_bytes(b"")
        return flood(guest, command)

    guest.on_command = console_lost
    run = submission(guest, dmesg_bytes=4096)
    assert run.engine is not None
    run.engine.sync_timeout = 0.05
    run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    assert run.obs.notes[0] == OVERFLOW_NOTE and len(run.obs.phase_logs["load"]) <= 4096 + 200


def test_salvage_takes_the_crashed_phase_from_the_console(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)

    def crash(guest: FakeGuest, command: str) -> int:
        guest.printk(*KTAP[:2], "BUG: kernel NULL pointer dereference, address: 0000000000000000",
                     "Oops: 0002 [#1] PREEMPT SMP NOPTI")
        raise KernelCrash("oops", "BUG: kernel NULL pointer dereference")

    guest.on_command = crash
    run = submission(guest)
    run._in_student_phase = True
    with pytest.raises(KernelCrash):
        run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    assert "load" in run.obs.seconds and "load" not in run.obs.phase_logs
    run._salvage_console(guest)  # type: ignore[arg-type]
    assert "NULL pointer" in run.obs.phase_logs["load"]
    assert [e.kind for e in run.obs.events] == ["oops"]
    run._salvage_console(guest)  # type: ignore[arg-type]     # once per phase
    assert len(run.obs.events) == 1


def test_no_salvage_before_any_phase() -> None:
    run = submission()
    run._salvage_console(None)  # type: ignore[arg-type]
    assert run.obs.phase_logs == {}


@pytest.mark.parametrize("fixture, what", [
    ("x86_64-6.1-softlockup-panic-excerpt.txt", "soft lockup"),
    ("x86_64-6.1-hung-task.txt", "hung task"),
    ("x86_64-6.1-rcu-stall.txt", "RCU stall"),
    ("arm64-6.12-softlockup-panic-excerpt.txt", "soft lockup"),
])
def test_a_lockup_report_is_a_hang(fixture: str, what: str) -> None:
    run = submission()
    run._in_student_phase = True
    run._record_crash(KernelCrash("panic", (DMESG / fixture).read_text()))
    assert run.obs.crash_kind == "lockup" and run.obs.crash
    assert run.obs.hang.startswith(f"the kernel detected a {what} in the module: ")
    assert run.obs.stopped_early.startswith("the kernel crashed (lockup)")


def test_a_lockup_panic_without_its_header_is_still_a_lockup() -> None:
    excerpt = ("[   30.1] Kernel panic - not syncing: hung_task: blocked tasks\n"
               "[   30.2] CPU: 0 PID: 30 Comm: khungtaskd Tainted: G           OE\n")
    run = submission()
    run._in_student_phase = True
    run._record_crash(KernelCrash("panic", excerpt))
    assert run.obs.crash_kind == "lockup" and "hung task" in run.obs.hang


def test_an_oops_is_a_crash_with_its_events() -> None:
    run = submission()
    run._in_student_phase = True
    text = (DMESG / "x86_64-6.1-null-deref-panic.txt").read_text()
    run._record_crash(KernelCrash("oops", text))
    assert run.obs.crash_kind == "oops" and not run.obs.hang
    assert [e.kind for e in run.obs.events] == ["module_taint", "oops", "panic"]


def test_a_crash_before_the_student_phase_is_the_harness_fault() -> None:
    run = submission()
    with pytest.raises(HarnessFault, match="before the module was loaded"):
        run._record_crash(KernelCrash("oops", "Oops: 0002 [#1] SMP"))


def _times_out(*lines: str):
    def handler(guest: FakeGuest, command: str) -> int:
        guest.printk(*lines)
        raise CommandTimeout("no answer within 15 s", state="hung")
    return handler


def test_a_step_that_times_out_while_the_kernel_floods_is_a_flood_with_its_rate(
        tmp_path: Path) -> None:
    """The old grader called every timed-out step a hang, whatever the log showed."""
    guest = FakeGuest(tmp_path)
    guest.on_command = _times_out(*KTAP[:2], *(f"flood {i}: xxxxxxxx" for i in range(5000)))
    run = submission(guest)
    run._in_student_phase = True
    with pytest.raises(CommandTimeout) as info:
        run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    run._record_hang(info.value)
    assert run.obs.flood and not run.obs.hang
    assert "printk flood: 5,002 lines" in run.obs.notes[-1] and "lines/s" in run.obs.notes[-1]
    assert "measured from the kernel timestamps" in run.obs.notes[-1]


def test_a_step_that_times_out_quietly_is_a_hang(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)
    guest.on_command = _times_out(*KTAP[:2], "waiting for nothing")
    run = submission(guest)
    run._in_student_phase = True
    with pytest.raises(CommandTimeout) as info:
        run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    run._record_hang(info.value)
    assert run.obs.hang == "no answer within 15 s" and not run.obs.flood


def test_a_lockup_the_kernel_survived_is_a_hang_and_fails_no_crash(tmp_path: Path) -> None:
    """An RCU stall and a soft lockup whose command still finished: the old grader saw a non-crash event, the
    default no_crash kinds left lockups out, and the run passed."""
    from kmodlab.labs.checks import evaluate_checks

    report = [line.split("] ", 1)[1]
              for line in (DMESG / "x86_64-6.1-soft-lockup.txt").read_text().splitlines()
              if "] " in line]
    guest = FakeGuest(tmp_path)
    guest.on_command = printing(*KTAP, *report)
    run = submission(guest)
    run._in_student_phase = True
    run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    assert run.obs.hang == ("the kernel detected a RCU stall in the module: "
                            "rcu: INFO: rcu_preempt self-detected stall on CPU")
    check = next(c for c in run.spec.checks if c.no_crash is not None)
    [result] = evaluate_checks(run.spec, [check], run.obs, {}, None)
    assert not result.passed


def test_the_hang_detectors_panic_on_their_report() -> None:
    """A report alone lets the step wait for its timeout: only a panic ends it at once."""
    from kmodlab.labs.engine import hang_detector_command

    command = hang_detector_command(4)
    assert "echo 4 > /proc/sys/kernel/hung_task_timeout_secs && " in command
    assert "echo 1 > /proc/sys/kernel/hung_task_panic && " in command
    assert "echo 1 > /proc/sys/kernel/softlockup_panic" in command
    assert "echo 4 > /proc/sys/kernel/watchdog_thresh" in command
    # watchdog_thresh takes 0..60 (kernel/watchdog.c:proc_watchdog_thresh())
    assert "echo 60 > /proc/sys/kernel/watchdog_thresh" in hang_detector_command(600)
