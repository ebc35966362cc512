"""The ioremap family's device: every guest's ivshmem BAR is a host file of its own run.

The cross-check (test_check.py) holds the mappings against the model; these tests hold the
device itself to what the family relies on: writes through the guest's MMIO mappings reach the
host file, a restored snapshot starts from zeros whatever an earlier run wrote, and a guest
without the device or a BAR too small for the windows is a clear failure, never a pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kmodlab.check.observation import named_values
from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import build, parse_params
from kmodlab.modules.params.ioremap import window_word
from kmodlab.observe.shared_memory import word_runs
from kmodlab.runner import run_module


@pytest.fixture(scope="module")
def big_bar_guest(kernel: Kernel) -> Iterator[Guest]:
    with Guest(kernel, GuestOptions(shared_memory_mb=4)) as guest:
        yield guest


def test_windows_land_in_the_host_file_at_their_offsets(kernel: Kernel,
                                                        big_bar_guest: Guest) -> None:
    params = parse_params("ioremap", ["apis=ioremap_wc,pci_iomap", "size=65536",
                                      f"offset={3 << 20}"])
    run = run_module(big_bar_guest, build("ioremap", params, kernel))
    assert run.ok, run.verdict
    assert big_bar_guest.shared_memory is not None
    data = big_bar_guest.shared_memory.read_bytes()
    assert len(data) == 4 << 20
    runs, _ = word_runs(data)
    assert [(r.offset, r.word, r.count) for r in runs] == [
        (3 << 20, window_word(0), 16384), ((3 << 20) + 65536, window_word(1), 16384)]


def test_a_restored_guest_starts_with_zeros(kernel: Kernel, big_bar_guest: Guest) -> None:
    """The previous test wrote into its run's file; a new guest from the same snapshot gets a
    file of its own, and the restore writes the snapshot's (zero) contents into it."""
    with Guest(kernel, GuestOptions(shared_memory_mb=4)) as guest:
        assert guest.timings.booted_from == "snapshot"
        assert guest.shared_memory != big_bar_guest.shared_memory
        assert guest.shared_memory is not None
        assert not any(guest.shared_memory.read_bytes())
        out = guest.run("grep -l 0x1110 /sys/bus/pci/devices/*/device", must_succeed=True)
        assert out.stdout.strip().endswith("/device")


def test_windows_beyond_the_bar_fail_with_the_sizes(kernel: Kernel) -> None:
    params = parse_params("ioremap", ["size=1048576"])          # 3 windows, a 1 MiB BAR
    with Guest(kernel) as guest:
        run = run_module(guest, build("ioremap", params, kernel))
    assert not run.ok
    assert not run.load.result("device").passed
    values = named_values(run.load, "device")
    assert (values["need"], values["bar_len"], values["region"]) == (3 << 20, 1 << 20, 0)


def test_a_guest_without_the_device_fails_the_probe(kernel: Kernel) -> None:
    params = parse_params("ioremap", [])
    with Guest(kernel, GuestOptions(shared_memory_mb=0)) as guest:
        assert guest.shared_memory is None
        run = run_module(guest, build("ioremap", params, kernel))
    assert not run.ok
    assert named_values(run.load, "device")["found"] == 0
    failed = [r.name for doc in run.load.ktap for _p, r in doc.walk() if not r.passed]
    assert failed == ["device", "map_ioremap", "map_ioremap_wc", "map_pci_iomap"]
