"""The console watcher classifies fatal kernel reports as the log grows."""

from __future__ import annotations

from pathlib import Path

from kmodlab.console.watch import ConsoleWatcher

OOPS = """[   12.000000] kml_test: loading out-of-tree module taints kernel.
[   12.100000] BUG: kernel NULL pointer dereference, address: 0000000000000000
[   12.100001] #PF: supervisor write access in kernel mode
[   12.100002] Oops: 0002 [#1] PREEMPT SMP NOPTI
[   12.200000] Kernel panic - not syncing: Fatal exception
"""


def test_detects_first_fatal_event_incrementally(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("[    0.000000] Linux version 6.1.0\n[    1.0] ok\n")
    watcher = ConsoleWatcher(log)
    watcher.poll_once()
    assert watcher.first_fatal() is None
    with open(log, "a") as fh:
        fh.write(OOPS[:60])          # a partial line is not classified yet
    watcher.poll_once()
    assert watcher.first_fatal() is None
    with open(log, "a") as fh:
        fh.write(OOPS[60:])
    watcher.poll_once()
    event = watcher.first_fatal()
    assert event is not None and event.kind == "oops"
    assert "NULL pointer" in event.line
    assert [e.kind for e in watcher.events] == ["oops", "oops", "panic"]
    excerpt = watcher.excerpt(event, settle=0)
    assert "Kernel panic" in excerpt and "loading out-of-tree" in excerpt


def test_quiet_log_has_no_events(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("[    0.1] random: crng init done\n[    0.2] WARNING: not fatal here\n")
    watcher = ConsoleWatcher(log)
    watcher.poll_once()
    assert watcher.events == []


def test_a_lockup_is_not_fatal_until_it_panics(tmp_path: Path) -> None:
    """Lockups are kernel events (kind lockup) but the kernel goes on: the guest keeps running
    (a command that never returns times out); the panic a lockup detector may cause is fatal."""
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"
    log = tmp_path / "console.log"
    log.write_text((fixtures / "x86_64-6.1-soft-lockup.txt").read_text()
                   + (fixtures / "x86_64-6.1-hung-task.txt").read_text())
    watcher = ConsoleWatcher(log)
    watcher.poll_once()
    assert watcher.events == []
    with open(log, "a") as fh:
        fh.write((fixtures / "x86_64-6.1-softlockup-panic.txt").read_text())
    watcher.poll_once()
    event = watcher.first_fatal()
    assert event is not None and event.kind == "panic" and "softlockup: hung tasks" in event.line


def test_a_detectors_panic_is_shown_from_its_report(tmp_path: Path) -> None:
    """hung_task_panic (labs' timeouts.blocked): the fatal line is the panic, but the report
    that names the hung task and its stack comes before it; the excerpt starts there, far more
    than five lines back (a real x86_64 6.1 console, tests/fixtures/dmesg)."""
    from kmodlab.observe.dmesg import find_lockup

    real = (Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"
            / "x86_64-6.1-hung-task-panic.txt").read_text()
    log = tmp_path / "console.log"
    log.write_text("[    0.000000] Linux version 6.1.0\n" * 400 + real)   # beyond one window
    watcher = ConsoleWatcher(log)
    watcher.poll_once()
    event = watcher.first_fatal()
    assert event is not None and event.kind == "panic"
    excerpt = watcher.excerpt(event, settle=0)
    assert excerpt.splitlines()[0].endswith("INFO: task insmod:115 blocked for more than 4 seconds.")
    assert "waste_init+0x7e/0x1000 [kml_waste]" in excerpt and "Kernel panic" in excerpt
    lockup = find_lockup(excerpt)
    assert lockup is not None and lockup.lockup == "hung task"
