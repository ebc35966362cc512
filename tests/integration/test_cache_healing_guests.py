"""The cache heals itself, with real guests: a truncated snapshot, a restore that fails for
another reason, a corrupted cached .ko.

Everything these tests damage lives in a private KMODLAB_CACHE: the kernel itself stays in the
shared cache and is only read; the guest userland is hard-linked from it (no download) and the
SSH keys are copied.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import kmodlab.guest as guest_mod
from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel
from kmodlab.manifest import verify
from kmodlab.modules import build
from kmodlab.paths import cache_root


@pytest.fixture(scope="module")
def cache(kernel: Kernel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    shared = cache_root()
    root = tmp_path_factory.mktemp("cache")
    if (shared / "guest-packages").is_dir():
        shutil.copytree(shared / "guest-packages", root / "guest-packages", symlinks=True,
                        copy_function=os.link)
    for name in ("ssh", "state"):
        if (shared / name).is_dir():
            shutil.copytree(shared / name, root / name, symlinks=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("KMODLAB_CACHE", str(root))
    yield root
    patch.undo()


def kmodlab_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("kmodlab")]


def the_snapshot(cache: Path) -> Path:
    [entry] = [p for p in (cache / "snapshots").iterdir() if p.is_dir() and p.name[0] != "."]
    return entry


def ensure_snapshot(kernel: Kernel, cache: Path) -> Path:
    snapshots = cache / "snapshots"
    if not snapshots.is_dir() or not any(p.is_dir() and p.name[0] != "." for p in snapshots.iterdir()):
        with Guest(kernel) as g:
            assert g.run("true").ok
    return the_snapshot(cache)


@pytest.mark.fault("cache_heal")
def test_truncated_snapshot_cold_boots_and_is_saved_again(
        kernel: Kernel, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    entry = ensure_snapshot(kernel, cache)
    state = entry / "state"
    size = state.stat().st_size
    with open(state, "r+b") as fh:
        fh.truncate(size // 3)
    caplog.set_level(logging.WARNING)
    with Guest(kernel) as g:
        assert g.timings.booted_from == "cold"
        assert g.run("uname -r").stdout.strip() == kernel.release
        assert g.timings.snapshot_save is not None
    [line] = kmodlab_warnings(caplog)
    assert f"snapshot {entry} is damaged: state is {size // 3} bytes" in line
    assert "cold boot" in line
    assert verify(the_snapshot(cache), deep=True) is None        # a good one was saved
    caplog.clear()
    with Guest(kernel) as g:
        assert g.timings.booted_from == "snapshot"
        assert g.run("uname -r").stdout.strip() == kernel.release
    assert kmodlab_warnings(caplog) == []


@pytest.mark.fault("cache_heal")
def test_restore_failing_for_another_reason_keeps_the_snapshot(
        kernel: Kernel, cache: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    entry = ensure_snapshot(kernel, cache)
    before = (entry / "state").stat()
    real_build_argv = guest_mod.build_argv

    def incoming_fails(profile, config, paths):
        # QEMU really restores, from an empty stream: the migration fails, the file is fine.
        argv = real_build_argv(profile, config, paths)
        if paths.incoming is not None:
            argv[argv.index("-incoming") + 1] = "exec:cat /dev/null"
        return argv

    monkeypatch.setattr(guest_mod, "build_argv", incoming_fails)
    caplog.set_level(logging.WARNING)
    with Guest(kernel) as g:
        assert g.timings.booted_from == "cold"
        assert g.run("true").ok
        assert g.timings.snapshot_save is None            # the intact one is not replaced
    [line] = kmodlab_warnings(caplog)
    assert "failed to restore" in line and "it is intact, so kept; cold boot" in line
    after = (entry / "state").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert verify(entry, deep=True) is None

    monkeypatch.undo()
    with Guest(kernel) as g:
        assert g.timings.booted_from == "snapshot"


@pytest.mark.fault("cache_heal")
def test_corrupted_cached_ko_is_rebuilt_and_loads(
        kernel: Kernel, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    built = build("kmalloc", None, kernel)
    assert str(cache) in str(built.ko_path)
    data = bytearray(built.ko_path.read_bytes())
    data[0:4] = b"\0BAD"                  # same size; the guest would say "invalid module format"
    built.ko_path.write_bytes(bytes(data))
    caplog.set_level(logging.WARNING)
    again = build("kmalloc", None, kernel)
    assert not again.cached and again.ko_path.read_bytes()[:4] == b"\x7fELF"
    [line] = kmodlab_warnings(caplog)
    assert "module build" in line and "kml_kmalloc.ko does not match its recorded sha256" in line
    assert build("kmalloc", None, kernel).cached
    with Guest(kernel) as g:
        g.push(again.ko_path, "/tmp/kml_kmalloc.ko")
        loaded = g.run("insmod /tmp/kml_kmalloc.ko")
        assert loaded.ok, loaded.output
        assert "kml_kmalloc" in g.run("cat /proc/modules").stdout
        assert g.run("rmmod kml_kmalloc").ok
