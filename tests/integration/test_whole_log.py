"""The whole kernel log, every time, on real guests: the runner's phases classify every line
of a log bigger than the old 4 MiB read, a flood is measured, and ``kmodlab run`` takes its
timeouts from the command line.  (The pytest plugin's side is in test_pytest_plugin.py, the
grader's in test_labs.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import build_source_dir
from kmodlab.phases import LOG_BYTES
from kmodlab.runner import run_module

pytestmark = pytest.mark.integration
FLOOD_MODULE = Path(__file__).resolve().parent / "data" / "flood_module"


def test_a_warning_before_a_flood_bigger_than_the_old_bound_fails_the_run(
        kernel: Kernel) -> None:
    """A WARN after 10 lines, then ~4.6 MB of log in the same phase: the old phase read kept
    the most recent 4 MiB (the ring buffer overflowed, the console fallback was cut) and the
    run passed."""
    built = build_source_dir(FLOOD_MODULE, kernel, ["lines=60000", "warn_at=10"])
    with Guest(kernel) as guest:
        run = run_module(guest, built, leak_check=False)
    load = run.load
    assert load.command.ok and load.scan is not None and load.scan.bytes > LOG_BYTES
    assert [e.kind for e in load.complaints] == ["warning"]
    assert not run.ok and "phase load: the kernel reported warning" in run.verdict
    [warning] = load.scan.complaints
    assert warning.module == "kml_flood"
    assert "kmodlab warning after 10 lines" in load.scan.excerpt(warning)
    assert len(load.log) <= LOG_BYTES + 200                    # the text kept is bounded
    assert load.flood is not None and load.flood.rate_lines > 0   # and its rate measured
    assert any("every line was classified" in note for note in load.notes)


def test_kmodlab_run_takes_its_load_timeout_from_the_command_line(
        kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    from kmodlab.cli import main

    argv = ["--arch", kernel.arch, "--kernel", f"{kernel.version[0]}.{kernel.version[1]}"]
    status = main(["run", str(FLOOD_MODULE), *argv, "--load-timeout", "4",
                   "--command-timeout", "20", "--", "lines=0"])
    _, err = capsys.readouterr()
    assert status == 2
    assert "no answer from the guest within 4.0 s" in err
