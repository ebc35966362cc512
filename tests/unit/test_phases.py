"""The module-phase engine (kmodlab.phases) without a guest: a fake guest emulates dmesg (a ring
buffer that overflows), /dev/kmsg, the console log and /proc, so the log cut, the overflow and
bound notes, the console fallback, snapshots and slab shrinking are checked exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kmodlab.errors import KernelCrash
from kmodlab.phases import (
    OVERFLOW_NOTE,
    PhaseEngine,
    console_after_marker,
    console_note,
    cut_after_marker,
    log_command,
    make_marker,
    shrink_command,
)
from kmodlab.runner import LoadedModule, Phase, run_module

try:
    from ._fake_guest import KTAP, FakeGuest, printing
except ImportError:  # tests/unit is a plain directory
    from _fake_guest import KTAP, FakeGuest, printing  # type: ignore[no-redef]

# --------------------------------------------------------------------------- pure parts

def test_shrink_command_every_or_named_caches_quoted() -> None:
    assert shrink_command(True) == ('for f in /sys/kernel/slab/*/shrink; do [ -e "$f" ] && '
                                    'echo 1 > "$f"; done 2>/dev/null; true')
    named = shrink_command(["kmalloc-64", "it's", "kmalloc-64"])
    assert named is not None
    assert "'/sys/kernel/slab/it'\\''s/shrink' '/sys/kernel/slab/kmalloc-64/shrink'" in named
    assert shrink_command("kml_cache") == shrink_command(["kml_cache"])
    assert shrink_command(False) is None and shrink_command(()) is None


def test_markers_are_unique_and_safe_in_sed_and_sh() -> None:
    a, b = make_marker("kmodlab-lab", "my read/step"), make_marker("kmodlab-lab", "my read/step")
    assert a != b and re.fullmatch(r"kmodlab-lab-my_read_step-[0-9a-f]{12}", a)
    assert log_command(a, 4096) == f"dmesg | sed -n '/{a}/,$p' | tail -c 4096"


def test_cut_after_marker() -> None:
    text = "[ 1.0] old\n[ 2.0] kmodlab-phase-load-1\n[ 3.0] new\n[ 4.0] last\n"
    assert cut_after_marker(text, "kmodlab-phase-load-1") == "[ 3.0] new\n[ 4.0] last\n"
    assert cut_after_marker("[ 2.0] kmodlab-phase-load-1", "kmodlab-phase-load-1") == ""
    assert cut_after_marker(text, "kmodlab-phase-load-2") is None


def test_console_after_marker_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"boot\r\n[ 1.0] M-1\r\n" + b"x" * 100 + b"\r\nend\r\n")
    assert console_after_marker(log, 0, "M-1", 1000) == ("x" * 100 + "\r\nend\r\n", False)
    text, cut = console_after_marker(log, 0, "M-1", 10)  # type: ignore[misc]
    assert (text, cut) == ("xxx\r\nend\r\n", True)
    assert console_after_marker(log, 0, "M-2", 1000) is None
    assert console_after_marker(log, 0, "M-1", 1000, search=4) is None
    assert console_after_marker(tmp_path / "missing", 0, "M-1", 10) is None


# --------------------------------------------------------------------------- the engine

def test_phase_log_is_cut_at_its_marker_with_ktap_and_events(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)
    guest.printk("earlier phase line", "BUG: kernel NULL pointer dereference, address: 0")
    guest.on_command = printing("kml: loading out-of-tree module taints kernel.", *KTAP)
    engine = PhaseEngine(guest)  # type: ignore[arg-type]
    phase = engine.run("load", "insmod /tmp/kml.ko", timeout=5, before=True, after=True)
    assert phase.log.splitlines()[0].endswith("kml: loading out-of-tree module taints kernel.")
    assert "earlier" not in phase.log and "NULL" not in phase.log
    assert [e.kind for e in phase.events] == ["module_taint"] and not phase.complaints
    assert phase.ok and phase.result("alloc").ok and not phase.notes
    assert phase.before is not None and phase.after is not None
    assert phase.before.slabinfo.get("kmalloc-64") is not None
    assert guest.reads() == []                     # the console had the phase: no dmesg read
    assert phase.scan is not None and phase.scan.started and phase.scan.ended
    assert engine.current is not None and engine.current.name == "load"
    assert engine.current.seconds == phase.seconds


def test_snapshots_only_when_asked_and_shrunk_first(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)
    engine = PhaseEngine(guest, shrink=["kmalloc-64"])  # type: ignore[arg-type]
    phase = engine.run("read3", "head -c 10 /sys/kernel/debug/x")
    assert phase.before is None and phase.after is None
    assert not any(c.startswith(("for f", "cat /proc")) for c in guest.commands)
    engine.snapshot()
    shrink, cat = guest.commands[-2:]
    assert shrink.startswith("for f in '/sys/kernel/slab/kmalloc-64/shrink'")
    assert cat.startswith("cat /proc/slabinfo")


def test_a_log_past_the_bound_is_classified_whole_and_kept_bounded(tmp_path: Path) -> None:
    """The bound is on the text kept, not on what is read: a WARN deep inside 200 lines and
    KTAP at the start of them are found with a 1000-byte bound (the old read kept only the
    most recent 1000 bytes, without the KTAP header and the WARN)."""
    warning = Path(__file__).parent.parent / "fixtures" / "dmesg" / "x86_64-6.12-warning.txt"
    report = [line.split("] ", 1)[1] for line in warning.read_text().splitlines()[1:-1]]
    guest = FakeGuest(tmp_path)
    guest.on_command = printing(*KTAP[:3], *(f"flood {i}" for i in range(100)), *report,
                                *(f"flood {i}" for i in range(100, 200)), KTAP[3])
    phase = PhaseEngine(guest, log_bytes=1000).run("load", "insmod x")  # type: ignore[arg-type]
    head, _, tail = phase.log.partition("[... ")
    assert "flood 0\n" in head and tail.endswith("ok 1 alloc\n") and len(head + tail) <= 1100
    assert "WARNING" not in phase.log                      # not kept as text...
    assert [e.kind for e in phase.complaints] == ["warning"]   # ...but classified
    assert phase.result("alloc").ok
    assert phase.notes and "every line was classified" in phase.notes[0]


class _NoConsole(FakeGuest):
    """A guest whose console shows nothing: the engine falls back to dmesg."""

    def printk(self, *texts: str, console: bool = True) -> None:
        super().printk(*texts, console=False)


def test_marker_not_yet_visible_is_read_again(tmp_path: Path) -> None:
    guest = _NoConsole(tmp_path)
    guest.on_command = printing("one")         # marker, "one", end marker: all three hidden
    guest.hidden_reads = 2
    phase = PhaseEngine(guest, sync_timeout=0.05).run("load", "insmod x")  # type: ignore[arg-type]
    assert len(guest.reads()) == 3 and not phase.notes
    assert [line.split("] ")[1] for line in phase.log.splitlines()] == ["one"]


def test_an_overflowed_ring_loses_nothing_the_console_has_the_phase(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path, ring_bytes=2000)
    guest.on_command = printing(*KTAP, *(f"noise {i}" for i in range(300)))
    engine = PhaseEngine(guest, attempts=2)  # type: ignore[arg-type]
    phase = engine.run("load", "insmod x")
    assert phase.notes == []
    assert "ok 1 alloc" in phase.log and "noise 299" in phase.log
    assert phase.result("alloc").ok                  # KTAP from the console's complete record
    assert guest.reads() == []                       # dmesg not read at all


def test_the_fallback_console_read_is_bounded(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path, ring_bytes=2000)
    guest.on_command = printing(*(f"noise {i}" for i in range(300)))
    engine = PhaseEngine(guest, log_bytes=500, attempts=1)  # type: ignore[arg-type]
    start = engine.begin("load")
    guest.run("x")
    text, notes = engine.read_log(start)
    assert notes == [console_note(True, 500)]
    assert len(text.encode()) <= 500 and text.endswith("noise 299\r\n")


def test_overflow_without_console_reads_the_dmesg_tail(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path, ring_bytes=2000)
    noise = printing(*(f"noise {i}" for i in range(300)), console=False)

    def console_lost(guest: FakeGuest, command: str) -> int:
        guest.console_log.write_bytes(b"")      # the console does not show the marker either
        return noise(guest, command)

    guest.on_command = console_lost
    phase = PhaseEngine(guest, log_bytes=1000, attempts=1,  # type: ignore[arg-type]
                        sync_timeout=0.05).run("load", "x")
    assert phase.notes[0] == OVERFLOW_NOTE
    assert guest.commands[-1] == "dmesg | tail -c 1000"
    assert phase.log.endswith("noise 299\n") and len(phase.log) <= 1000


def test_a_crash_leaves_the_phase_start_for_salvage(tmp_path: Path) -> None:
    guest = FakeGuest(tmp_path)

    def crash(guest: FakeGuest, command: str) -> int:
        guest.printk("KTAP version 1", "BUG: kernel NULL pointer dereference, address: 0")
        raise KernelCrash("oops", "BUG: kernel NULL pointer dereference")

    guest.on_command = crash
    engine = PhaseEngine(guest)  # type: ignore[arg-type]
    with pytest.raises(KernelCrash):
        engine.run("load", "insmod x", before=True)
    start = engine.current
    assert start is not None and start.name == "load" and start.seconds is not None
    salvaged = engine.console_since_start(60)
    assert salvaged is not None and start.marker in salvaged and len(salvaged) == 60
    assert "NULL pointer" in (engine.console_since_start(10_000) or "")


# --------------------------------------------------------------------------- the runner on it

def test_runner_phases_go_through_the_engine(tmp_path: Path) -> None:
    from kmodlab.modules.build import BuiltModule

    guest = FakeGuest(tmp_path)
    guest.on_command = printing("kml: loading out-of-tree module taints kernel.", *KTAP)
    built = BuiltModule(Path("kml.ko"), "kml", None, None, "6.1.0", Path("."), "")  # type: ignore[arg-type]
    module = LoadedModule(guest, built)  # type: ignore[arg-type]
    load = module.load(("size=100",))
    assert isinstance(load, Phase) and load.ok and module.loaded
    assert load.command.command == "insmod '/tmp/kmodlab/kml.ko' 'size=100'"
    assert load.before.slabinfo and load.after.slabinfo and load.notes == []
    assert module.engine.current is not None and module.engine.current.marker.startswith(
        "kmodlab-phase-load-")
    guest.on_command = printing()
    run = run_module(guest, built)  # type: ignore[arg-type]
    assert run.ok and run.unload is not None and run.unload.log == ""
    assert run.unload.command.command == "rmmod 'kml'"


@pytest.mark.parametrize("family, silent_ok", [(None, True), ("kmalloc", False)])
def test_a_family_module_that_prints_no_ktap_fails(tmp_path: Path, family: str | None,
                                                    silent_ok: bool) -> None:
    """kmodlab's families promise KTAP: a phase without any is a failure (kunit_tool's
    "could not find any KTAP output"); a module of your own need not print KTAP."""
    from kmodlab.modules.build import BuiltModule

    guest = FakeGuest(tmp_path)
    guest.on_command = printing("kml: loading out-of-tree module taints kernel.")
    built = BuiltModule(Path("kml.ko"), "kml", family, None, "6.1.0", Path("."), "")  # type: ignore[arg-type]
    load = LoadedModule(guest, built).load()  # type: ignore[arg-type]
    assert load.command.ok and load.ktap == [] and not load.complaints
    assert load.ok is silent_ok
    guest.on_command = printing("KTAP version 1", "1..0")
    assert not LoadedModule(guest, built).load().ok  # type: ignore[arg-type]  # zero tests


def _byo() -> object:
    from kmodlab.modules.build import BuiltModule

    return BuiltModule(Path("kml.ko"), "kml", None, None, "6.1.0", Path("."), "")  # type: ignore[arg-type]


def test_a_module_that_floods_fails_the_run_with_the_rate(tmp_path: Path) -> None:
    """kmodlab run on a module printing 3000 lines at load (1000 lines/s by the kernel's
    timestamps): not OK, and the verdict says flood with its rate (the old runner said OK)."""
    guest = FakeGuest(tmp_path)
    guest.on_command = printing(*(f"kml: line {i}" for i in range(3000)))
    run = run_module(guest, _byo(), leak_check=False)  # type: ignore[arg-type]
    assert not run.ok
    assert "phase load: flood: printk flood: 3,000 lines" in run.verdict, run.verdict
    assert "lines/s" in run.verdict
    (tmp_path / "quiet").mkdir()
    quiet = FakeGuest(tmp_path / "quiet")
    quiet.on_command = printing(*(f"kml: line {i}" for i in range(400)))    # chatty, no flood
    assert run_module(quiet, _byo(), leak_check=False).ok  # type: ignore[arg-type]


def test_a_report_printed_between_load_and_unload_is_the_unload_phases(tmp_path: Path) -> None:
    """A WARN from the module's work item while it sat loaded, after the load phase's window
    closed and before rmmod: counted (the old runner lost it between the two windows)."""
    guest = FakeGuest(tmp_path)
    module = LoadedModule(guest, _byo(), leak_check=False)  # type: ignore[arg-type]
    assert module.load().ok
    guest.printk("------------[ cut here ]------------",
                 "WARNING: CPU: 0 PID: 12 at kml.c:20 kml_work+0x10/0x20 [kml]",
                 "Modules linked in: kml(OE)",
                 "---[ end trace 0000000000000000 ]---")
    unload = module.unload()
    assert [e.kind for e in unload.complaints] == ["warning"], unload.events
    assert any("before this phase began" in note for note in unload.notes)
    assert unload.log == ""          # the phase's own log is still only the phase's
