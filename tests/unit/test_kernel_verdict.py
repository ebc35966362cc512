"""The kernel's verdict on a test (kmodlab.testing) from the whole console log, on real logs:
a WARN past the first 20 KB, a lockup the kernel survived, a flood told from a hang, a delayed
report charged to the test that loaded its module."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from kmodlab.guest import GuestState
from kmodlab.observe.stream import scan_lines
from kmodlab.testing import Owner, console_slice, console_verdict, judge

DMESG = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"
WARN_IN_FLOOD = (DMESG / "x86_64-6.1-warning-in-flood.txt").read_text().splitlines()
DELAYED = (DMESG / "x86_64-6.1-delayed-warning.txt").read_text().splitlines()


def noise(n: int, step: float = 0.0001) -> list[str]:
    return [f"[{1 + i * step:12.6f}] kml_flood line {i}: " + "x" * 40 for i in range(n)]


def guest_with(tmp_path: Path, lines: list[str], state: GuestState = GuestState.READY):
    log = tmp_path / "console.log"
    log.write_text("".join(line + "\r\n" for line in lines))
    return SimpleNamespace(console_log=log, state=state, healthy=state == GuestState.READY)


def test_a_warning_after_20_kb_of_the_test_s_log_fails_it(tmp_path: Path) -> None:
    """The old verdict read the first 20,000 bytes of the test's log and passed this test."""
    guest = guest_with(tmp_path, [*noise(400), *WARN_IN_FLOOD])
    verdict = console_verdict(guest, 0)  # type: ignore[arg-type]
    assert verdict is not None and verdict.startswith("kernel warning during the test")
    assert "\n[... 30.9 KB of kernel log before this ...]\n" in verdict
    assert "kmodlab warning after 10 lines" in verdict


def test_the_report_section_is_bounded_but_keeps_both_ends(tmp_path: Path) -> None:
    guest = guest_with(tmp_path, ["[    0.5] kmodlab-marker-in-this-test", *noise(5000)])
    text = console_slice(guest, 0)  # type: ignore[arg-type]
    assert len(text) < 21000 and "kmodlab-marker-in-this-test" in text
    assert "kml_flood line 4999:" in text and "of kernel log not kept here" in text


def test_a_lockup_the_kernel_survived_fails_the_test_with_its_header(tmp_path: Path) -> None:
    """Not a crash, not a WARN: the old verdict let a soft lockup / RCU stall pass."""
    for fixture, header in [("x86_64-6.1-soft-lockup.txt",
                             ("lockup (RCU stall) during the test: rcu: INFO: rcu_preempt "
                             "self-detected stall on CPU")),
                            ("arm64-6.12-soft-lockup.txt",
                             ("lockup (soft lockup) during the test: watchdog: BUG: soft lockup "
                             "- CPU#0 stuck for "))]:
        guest = guest_with(tmp_path, (DMESG / fixture).read_text().splitlines())
        verdict = console_verdict(guest, 0)  # type: ignore[arg-type]
        assert verdict is not None and verdict.startswith(header), verdict


def test_a_hung_command_during_a_flood_is_a_flood_with_its_rate(tmp_path: Path) -> None:
    """The old verdict said "hang" whatever the log showed."""
    guest = guest_with(tmp_path, noise(20_000), GuestState.BROKEN)
    verdict = console_verdict(guest, 0)  # type: ignore[arg-type]
    assert verdict is not None and verdict.startswith(
        "flood: a command in the guest did not finish while the kernel printed without end "
        "(printk flood: 20,000 lines (1.6 MB) of kernel log, at 10,00")
    assert "lines/s" in verdict
    quiet = guest_with(tmp_path, noise(20, step=1.0), GuestState.BROKEN)
    assert (console_verdict(quiet, 0) or "").startswith(  # type: ignore[arg-type]
        "hang: a command in the guest did not finish")


def test_a_delayed_report_names_the_module_and_the_test_that_loaded_it() -> None:
    scan = scan_lines(DELAYED)
    owners = {"kml_late": Owner("test_inner.py::test_a")}
    verdict = judge(scan, test="test_inner.py::test_b", owners=owners)
    assert verdict is not None and verdict.startswith(
        "delayed report from kml_late, loaded by test_inner.py::test_a: kernel warning printed "
        "during the test:")
    assert "Workqueue: events kml_late_fn [kml_late]" in verdict
    # the test that loaded it gets the ordinary verdict; one that expected warnings, none
    own = judge(scan, test="test_inner.py::test_a", owners=owners)
    assert own is not None and own.startswith("kernel warning during the test")
    assert judge(scan, test="test_inner.py::test_b",
                 owners={"kml_late": Owner("test_inner.py::test_a", True)}) is None
    # even a test that expects warnings is not charged with (nor excused for) another's
    assert judge(scan, test="test_inner.py::test_b", owners=owners, expect_warnings=True)
