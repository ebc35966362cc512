"""Memory-debugging reports read into facts (kmodlab.observe.reports) and kmemleak's suspects
charged to a module (kmodlab.kmemleak), on logs captured from kmodlab's own debug kernels
(tests/fixtures/reports/<kernel>/)."""

from __future__ import annotations

from pathlib import Path

from kmodlab.errors import KernelCrash
from kmodlab.kmemleak import module_leaks, name_frames, parse_kmemleak
from kmodlab.leaks import Footprint, Region
from kmodlab.observe.dmesg import find_events
from kmodlab.observe.reports import report_details

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reports"
X86_DEBUG = FIXTURES / "x86_64-6.1-debug-memory"


def test_a_kasan_report_says_bug_access_object_and_allocation() -> None:
    text = (X86_DEBUG / "kasan-slab-out-of-bounds.log").read_text()
    [event] = [e for e in find_events(text) if e.kind == "kasan"]
    details = report_details(event)
    assert details is not None
    assert (details.detector, details.bug) == ("KASAN", "slab-out-of-bounds")
    assert details.where == "oob_init+0x43/0x1000 [kml_oob]"
    assert details.access == "Write of size 1"
    assert details.object == "120 bytes inside of a 128-byte object (cache kmalloc-128)"
    # The allocation stack without KASAN's own frames; no free stack for an out-of-bounds.
    assert details.allocated[0] == "oob_init+0x24/0x1000 [kml_oob]"
    assert not any(f.startswith(("kasan_", "__kasan")) for f in details.allocated)
    assert details.freed == ()
    assert details.describe() == ("KASAN slab-out-of-bounds in oob_init+0x43/0x1000 [kml_oob]: "
                                  "Write of size 1; 120 bytes inside of a 128-byte object "
                                  "(cache kmalloc-128)")


def test_a_crash_message_carries_the_details() -> None:
    text = (X86_DEBUG / "kasan-slab-out-of-bounds.log").read_text()
    [event] = [e for e in find_events(text) if e.kind == "kasan"]
    crash = event.as_crash()
    assert isinstance(crash, KernelCrash) and crash.details is not None
    assert str(crash).startswith("kernel kasan detected on the console: KASAN "
                                 "slab-out-of-bounds in oob_init")


def test_reports_that_are_not_memory_debugging_have_no_details() -> None:
    assert report_details("[    1.0] BUG: kernel NULL pointer dereference, address: 0") is None
    assert report_details("WARNING: CPU: 0 PID: 1 at mm/slab_common.c:1 f+0x1/0x2") is None


def test_the_other_detectors_formats() -> None:
    """Header lines as the kernel prints them (file and function in kmodlab.observe.reports)."""
    sleep = report_details(
        "BUG: sleeping function called from invalid context at mm/slab.h:733\n"
        "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 60, name: insmod\n")
    assert sleep is not None and sleep.detector == "might_sleep"
    assert sleep.where == "mm/slab.h:733" and sleep.context.startswith("in_atomic(): 1")
    slub = report_details("BUG kmalloc-128 (Tainted: G    B   O      ): Object already free\n"
                          "INFO: Allocated in df_init+0x1c/0x60 [kml_bugs] age=2 cpu=0 pid=6\n"
                          "INFO: Freed in df_init+0x2c/0x60 [kml_bugs] age=2 cpu=0 pid=6\n")
    assert slub is not None and (slub.detector, slub.bug) == ("SLUB", "Object already free")
    assert slub.allocated == ("df_init+0x1c/0x60 [kml_bugs]",)
    assert slub.freed == ("df_init+0x2c/0x60 [kml_bugs]",)
    lock = report_details("WARNING: possible recursive locking detected\n")
    assert lock is not None and (lock.detector, lock.bug) == ("lockdep",
                                                              "possible recursive locking detected")


def test_kmemleak_suspects_are_parsed_from_the_debugfs_file() -> None:
    [obj] = parse_kmemleak((X86_DEBUG / "kmemleak-debugfs.txt").read_text())
    assert (obj.address, obj.size, obj.comm, obj.pid) == ("0xffff8880045f8400", 128, "insmod", 55)
    assert obj.frames[:2] == ("kmalloc_trace+0x1f/0x40", "0xffffffffa0005022")
    # The console's form (kmemleak.verbose=1) parses the same.
    console = "\n".join(f"[   12.5] kmemleak: {line}" for line in
                        (X86_DEBUG / "kmemleak-debugfs.txt").read_text().splitlines())
    assert parse_kmemleak(console) == [obj]


def test_an_unloaded_module_s_frame_is_named_from_its_footprint() -> None:
    """After rmmod kmemleak prints the module's frame as a bare address; the addresses the
    module had while loaded name it, and the leak is charged to its allocation site."""
    [obj] = parse_kmemleak((X86_DEBUG / "kmemleak-debugfs.txt").read_text())
    footprint = Footprint("kml_small_leak",
                          sections=(Region(".init.text", 0xFFFFFFFFA0005000, 0xFFFFFFFFA000502C),),
                          functions=(Region("small_leak_init", 0xFFFFFFFFA0005000,
                                            0xFFFFFFFFA000502C),))
    named = name_frames(obj, footprint)
    assert named.frames[1] == "small_leak_init+0x22/0x2c [kml_small_leak]"
    [leak] = module_leaks([obj], "kml_small_leak", footprint,
                          source=lambda frame: f"{frame} at kml_small_leak.c:9")
    assert (leak.kind, leak.count, leak.bytes) == ("kmemleak", 1, 128)
    assert leak.where == "small_leak_init+0x22/0x2c [kml_small_leak] at kml_small_leak.c:9"
    assert "allocated at small_leak_init+0x22/0x2c [kml_small_leak] at kml_small_leak.c:9" in \
        leak.describe()
    # Another module's suspects, or none in this module's range, charge nothing.
    assert module_leaks([obj], "kml_other", footprint) == []
    assert module_leaks([obj], "kml_small_leak", None) == []


def test_kmemleak_s_6_12_format_parses_too() -> None:
    """6.12 prints "backtrace (crc ...):" and frames without the [<address>] prefix."""
    [obj] = parse_kmemleak((FIXTURES / "arm64-6.12-debug-memory" / "kmemleak-debugfs.txt")
                           .read_text())
    assert (obj.size, obj.comm, obj.pid) == (128, "insmod", 60)
    assert obj.frames[:4] == ("kmemleak_alloc+0x30/0x38", "__kmalloc_cache_noprof+0x1a4/0x2a0",
                              "0xffff800079320044", "0xffff80007932609c")
    assert len(obj.frames) == 14                     # the hex dump is not a frame
    footprint = Footprint("kml_bugs", sections=(Region(".text", 0xFFFF800079320000,
                                                       0xFFFF800079320100),),
                          functions=(Region("kml_leak_kmalloc", 0xFFFF800079320000,
                                            0xFFFF800079320060),))
    [leak] = module_leaks([obj], "kml_bugs", footprint)
    assert leak.where == "kml_leak_kmalloc+0x44/0x60 [kml_bugs]"


class _KmemleakGuest:
    """Answers kmodlab.kmemleak.scan()'s two commands; records them."""

    def __init__(self, uptime: float, report: str) -> None:
        self.uptime, self.report, self.commands = uptime, report, []

    def run(self, command: str, **_: object):
        from types import SimpleNamespace

        self.commands.append(command)
        out = f"{self.uptime} 0.5\n" if command.endswith("/proc/uptime") else self.report
        return SimpleNamespace(ok=True, stdout=out)


def test_kmemleak_waits_min_age_from_the_first_scan_not_from_insmod() -> None:
    # A slow load (KASAN under TCG) must not shorten the wait: the object allocated at the
    # end of the load would still be younger than MIN_AGE at the reporting scan.
    from kmodlab.kmemleak import MIN_AGE, scan

    report = (X86_DEBUG / "kmemleak-debugfs.txt").read_text()
    guest = _KmemleakGuest(42.0, report)
    [obj] = scan(guest)  # type: ignore[arg-type]
    assert obj.size == 128
    first, second = guest.commands
    assert first.startswith("echo scan > ") and first.endswith("cat /proc/uptime")
    ready = float(second.split("-v r=")[1].split()[0])
    assert ready >= 42.0 + MIN_AGE
