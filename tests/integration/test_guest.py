"""A real guest on every kernel of the matrix, over both transports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kmodlab.errors import BootTimeout, KernelCrash
from kmodlab.guest import Guest, GuestState
from kmodlab.kernels.kernel import Kernel
from kmodlab.qemu.process import running_qemu_pids as qemu_pids


@pytest.fixture(scope="module", params=["serial", "ssh"])
def guest(request: pytest.FixtureRequest, kernel: Kernel):
    with Guest(kernel, transport=request.param) as g:
        yield g


def test_runs_commands_with_real_status(guest: Guest) -> None:
    result = guest.run("uname -r")
    assert result.ok and result.stdout.strip() == guest.kernel.release
    assert guest.run("exit 42").exit_status == 42


def test_output_is_exact(guest: Guest) -> None:
    assert guest.run("printf 'no newline'").stdout_bytes == b"no newline"
    assert guest.run("printf '\\377\\376'").stdout_bytes == b"\xff\xfe"
    assert guest.run("echo '~ # '; echo 'kmodlab# '").stdout == "~ # \nkmodlab# \n"


def test_long_proc_files(guest: Guest) -> None:
    slabinfo = guest.run("cat /proc/slabinfo").stdout
    assert slabinfo.startswith("slabinfo - version: 2.1\n")
    assert len(slabinfo.splitlines()) > 50
    # The byte count of the file as the guest sees it equals what reached the host.
    size = int(guest.run("cat /proc/slabinfo | wc -c").stdout)
    assert abs(size - len(slabinfo.encode())) < 400   # slabinfo changes a little between reads


def test_kernel_messages_do_not_corrupt_output(guest: Guest) -> None:
    result = guest.run("for i in 1 2 3 4 5; do echo kmodlab-noise-$i > /dev/kmsg; echo out-$i; done")
    assert result.stdout == "".join(f"out-{i}\n" for i in range(1, 6))
    guest.run("true")  # let the console log catch up
    assert "kmodlab-noise-5" in guest.console_text()


def test_every_level_reaches_the_console_log(guest: Guest) -> None:
    """The kernel boots quiet; /init turns ignore_loglevel on, so a KERN_DEBUG line is recorded."""
    assert guest.run("cat /sys/module/printk/parameters/ignore_loglevel").stdout == "Y\n"
    guest.run("echo '<7>kmodlab-debug-level-line' > /dev/kmsg")
    guest.run("true")  # let the console log catch up
    assert "kmodlab-debug-level-line" in guest.console_text()


def test_push_and_read_back(guest: Guest, tmp_path: Path) -> None:
    # 2 MiB: large enough that a lossy channel shows (a virtconsole dropped bytes under load).
    payload = os.urandom(2 * 1024 * 1024)
    src = tmp_path / "blob.bin"
    src.write_bytes(payload)
    guest.push(src, "/tmp/blob.bin")
    assert guest.run("wc -c < /tmp/blob.bin").stdout.strip() == str(len(payload))
    assert guest.read("/tmp/blob.bin") == payload


def test_forced_panic_is_detected(kernel: Kernel) -> None:
    with Guest(kernel) as g:
        with pytest.raises(KernelCrash) as info:
            g.run("echo c > /proc/sysrq-trigger", timeout=30)
        assert info.value.kind == "panic"
        assert "sysrq" in info.value.excerpt.lower()
        assert g.state == GuestState.CRASHED
        assert Path(info.value.log_path).is_file()
    assert g.qemu_pids and not set(g.qemu_pids) & qemu_pids()


def test_boot_timeout_fails_cleanly(kernel: Kernel) -> None:
    guest = Guest(kernel, boot_timeout=0.5, snapshots=False)
    with pytest.raises(BootTimeout) as info:
        guest.start()
    assert "did not reach its command prompt" in str(info.value)
    assert "console log" in str(info.value)
    assert guest.qemu_pids and not set(guest.qemu_pids) & qemu_pids()


def test_snapshot_restore_gives_a_fresh_guest(kernel: Kernel) -> None:
    with Guest(kernel) as first:
        first.run("echo dirty > /tmp/state")
    with Guest(kernel) as second:
        assert second.timings.booted_from == "snapshot"
        assert second.run("cat /tmp/state").exit_status != 0
        assert second.run("uname -r").stdout.strip() == kernel.release


def test_exec_runs_a_shell_line_and_a_command_of_several_words(
        kernel: Kernel, capfd: pytest.CaptureFixture[str]) -> None:
    """``kmodlab exec -- sh -c 'echo a; echo b'``: the guest's sh gets ``echo a; echo b`` as one
    argument (it used to run ``sh -c echo a`` and then ``b``)."""
    from kmodlab.cli import main

    target = ["--arch", kernel.arch, "--kernel", kernel.series]
    assert main(["exec", *target, "--", "sh", "-c", "echo a; echo b"]) == 0
    assert capfd.readouterr().out.split() == ["a", "b"]
    assert main(["exec", *target, "--", "echo one two | wc -w"]) == 0
    assert capfd.readouterr().out.split() == ["2"]
