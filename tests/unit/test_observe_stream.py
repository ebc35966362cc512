"""The streaming classifier (kmodlab.observe.stream) and the guilty module
(kmodlab.observe.blame) on real kernel logs, however long: reports deep inside megabytes of
flood, floods with their rate, KTAP wherever it is, bounded memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.observe.blame import guilty_module
from kmodlab.observe.dmesg import find_events
from kmodlab.observe.stream import (
    FLOOD_LINES,
    KEEP_BYTES,
    MAX_EVENTS,
    scan_file,
    scan_lines,
)

DMESG = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"
WARN_IN_FLOOD = (DMESG / "x86_64-6.1-warning-in-flood.txt").read_text().splitlines()
DELAYED = (DMESG / "x86_64-6.1-delayed-warning.txt").read_text().splitlines()


def flood(start: float, n: int, step: float = 0.0001, first: int = 0) -> list[str]:
    """Lines in the exact form kml_flood printed them on x86_64 6.1 (about 10,000 lines/s)."""
    return [f"[{start + i * step:12.6f}] kml_flood line {first + i}: " + "x" * 40
            for i in range(n)]


def write(path: Path, lines: list[str]) -> Path:
    with open(path, "w") as fh:
        fh.writelines(line + "\r\n" for line in lines)          # as QEMU writes the serial console
    return path


def test_a_warning_after_megabytes_is_found_with_a_note_of_where(tmp_path: Path) -> None:
    lines = [*flood(1.0, 70_000), *WARN_IN_FLOOD, *flood(9.0, 10_000, first=70_000)]
    scan = scan_file(write(tmp_path / "console.log", lines), 0)
    assert scan is not None and scan.lines == len(lines)
    [warning] = scan.complaints
    assert warning.event.kind == "warning" and warning.module == "kml_flood"
    assert warning.offset > 5_000_000
    excerpt = scan.excerpt(warning)
    assert excerpt.startswith("[... 5.")
    assert " MB of kernel log before this ...]\n" in excerpt
    assert "kmodlab warning after 10 lines" in excerpt
    assert len(scan.text) <= KEEP_BYTES + 200          # the text kept is bounded
    assert "kml_flood line 0:" in scan.text and "kml_flood line 79999:" in scan.text


def test_markers_bound_the_window(tmp_path: Path) -> None:
    lines = ["[    1.000000] before: BUG: not this window", "[    1.100000] kmodlab-phase-load-1",
             *WARN_IN_FLOOD, "[    2.000000] kmodlab-phase-load-end-1",
             "[    2.100000] BUG: kernel NULL pointer dereference, address: 0000000000000000"]
    path = write(tmp_path / "console.log", lines)
    scan = scan_file(path, 0, start_marker="kmodlab-phase-load-1",
                     end_marker="kmodlab-phase-load-end-1")
    assert scan is not None and scan.started and scan.ended
    assert [f.event.kind for f in scan.complaints] == ["warning"]
    assert scan.position == path.read_bytes().index(b"[    2.100000]")
    assert scan_file(path, 0, start_marker="missing").started is False  # type: ignore[union-attr]


def test_memory_is_bounded_and_a_crash_after_a_storm_of_warnings_still_counts() -> None:
    oops = (DMESG / "x86_64-6.1-null-deref-panic.txt").read_text().splitlines()
    scan = scan_lines([*WARN_IN_FLOOD * 1000, *oops])
    kinds = [f.event.kind for f in scan.found]
    assert len(scan.found) <= 2 * MAX_EVENTS and scan.omitted_events >= 1000 - 2 * MAX_EVENTS
    assert "oops" in kinds and any(f.event.is_crash for f in scan.found)
    assert any("more kernel report(s)" in note for note in scan.notes())


def test_ktap_is_found_wherever_it_is_however_much_is_printed_inside_it() -> None:
    ktap = ["[    1.0] KTAP version 1", "[    1.0] 1..1",
            "[    1.0] # alloc: requested=100 ksize=128 waste=28"]
    lines = [*flood(0.5, 5000), *ktap, *flood(2.0, 3000, first=5000), "[    3.0] ok 1 alloc"]
    scan = scan_lines(lines, keep_bytes=4096)
    [doc] = scan.ktap
    assert doc.ok and doc.find("alloc").values["ksize"] == 128
    assert "KTAP version 1" not in scan.text          # not kept as text, yet parsed


def test_a_flood_has_its_rate_from_the_kernel_timestamps() -> None:
    scan = scan_lines(flood(5.0, 20_000))
    assert scan.flood is not None and scan.flood.rate_source == "kernel timestamps"
    assert scan.flood.rate_lines == pytest.approx(10_000, rel=0.01)
    described = scan.flood.describe()
    assert described.startswith("printk flood: 20,000 lines (1.5 MB) of kernel log, at 10,00")
    assert "lines/s" in described and "KB/s" in described


def test_a_long_quiet_log_is_no_flood_and_dropped_messages_count() -> None:
    assert scan_lines(flood(5.0, 3000, step=0.05)).flood is None       # 20 lines/s
    assert scan_lines(flood(5.0, FLOOD_LINES - 1)).flood is None
    dropped = scan_lines([*flood(5.0, 2000), "[    6.000000] ** 12345 printk messages dropped **"])
    assert dropped.flood is not None and dropped.flood.dropped == 12345
    assert "the console dropped 12,345 more" in dropped.flood.describe()


def test_without_timestamps_the_rate_is_wall_time() -> None:
    lines = [line.split("] ", 1)[1] for line in flood(0, 3000)]
    assert scan_lines(lines).flood is None
    flood_ = scan_lines(lines, wall_seconds=1.5).flood
    assert flood_ is not None and flood_.rate_source == "wall time"
    assert flood_.rate_lines == pytest.approx(2000)


def test_a_line_without_end_is_cut_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(b"[ 1.0] " + b"z" * (5 << 20) + b"\r\n" + "\r\n".join(DELAYED).encode())
    scan = scan_file(path, 0)
    assert scan is not None and scan.bytes == path.stat().st_size + 1
    assert [f.module for f in scan.complaints] == ["kml_late"]


@pytest.mark.parametrize("fixture, module", [
    ("x86_64-6.1-delayed-warning.txt", "kml_late"),      # Workqueue:, RIP in a kworker
    ("x86_64-6.1-warning-in-flood.txt", "kml_flood"),
    ("x86_64-6.1-null-deref-panic.txt", "ap"),
    ("x86_64-6.12-warning.txt", "ap"),                   # the first frame with [ap]
    ("arm64-6.12-oops.txt", "ap"),                       # pc : ap_crash+0x10/0x20 [ap]
    ("x86_64-6.1-soft-lockup.txt", "lockmod"),
    ("arm64-6.12-soft-lockup.txt", "lockmod"),
])
def test_the_guilty_module_is_the_first_frame_in_a_module(fixture: str, module: str) -> None:
    events = [e for e in find_events((DMESG / fixture).read_text()) if e.is_complaint]
    assert events and guilty_module(events[0]) == module


def test_modules_linked_in_decides_only_between_known_candidates() -> None:
    text = "[    1.000000] ------------[ cut here ]------------\n[    1.000100] WARNING: CPU: 0 PID: 7 at mm/slab_common.c:497 kmem_cache_destroy+0x1/0x2\n[    1.000200] Modules linked in: kml_a(OE) virtio_console virtio\n[    1.000300] ---[ end trace 0000000000000000 ]---"
    [event] = find_events(text)
    assert guilty_module(event) is None
    assert guilty_module(event, ["kml_a", "kml_b"]) == "kml_a"
    assert guilty_module(event, ["kml_b"]) is None
