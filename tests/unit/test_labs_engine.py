"""The lab grader's run (kmodlab.labs.engine.SubmissionRun) on the shared phase engine, without
a guest: its phases, bounded logs and notes, console salvage, and how it classifies a kernel
report (a lockup is a hang, anything else a crash) through kmodlab.observe.dmesg."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import KernelCrash
from kmodlab.labs.engine import MARKER_PREFIX, HarnessFault, SubmissionRun
from kmodlab.labs.lab import load_lab
from kmodlab.phases import OVERFLOW_NOTE, PhaseEngine, console_note

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


def test_the_phase_log_is_bounded_by_the_lab(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path, ring_bytes=6000)
    guest.on_command = printing(*(f"flood {i}" for i in range(2000)))
    run = submission(guest, dmesg_bytes=4096)
    run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    log = run.obs.phase_logs["load"]
    assert len(log.encode()) <= 4096 and "flood 1999" in log
    assert run.obs.notes == [console_note(True, 4096)]


def test_lost_marker_note_when_nothing_shows_it(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path, ring_bytes=6000)
    flood = printing(*(f"flood {i}" for i in range(2000)), console=False)

    def console_lost(guest: FakeGuest, command: str) -> int:
        guest.console_log.write_bytes(b"")
        return flood(guest, command)

    guest.on_command = console_lost
    run = submission(guest, dmesg_bytes=4096)
    run._phase(guest, "load", "insmod x", 15)  # type: ignore[arg-type]
    assert run.obs.notes == [OVERFLOW_NOTE] and len(run.obs.phase_logs["load"]) <= 4096


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
