"""The cache heals itself: integrity manifests, damaged entries rebuilt, leftovers swept.

Pure logic on temporary caches: no QEMU (tests/integration/test_cache_healing.py boots guests).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kmodlab import manifest, paths, snapshot
from kmodlab.errors import GuestError
from kmodlab.manifest import ABSENT, MANIFEST, check_entry, verify, write_manifest

build_impl = importlib.import_module("kmodlab.modules.build")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def make_entry(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


# ----------------------------------------------------------------------------- the manifest

@pytest.mark.fault("cache_heal")
def test_manifest_is_written_last_and_an_entry_without_it_is_damaged(tmp_path: Path) -> None:
    final = tmp_path / "builds" / "thing"
    # Killed inside the atomic block, before the manifest: nothing is left where it would count.
    with pytest.raises(KeyboardInterrupt), paths.atomic_dir(final) as tmp:
        make_entry(tmp, {"a.ko": b"\x7fELF" + b"x" * 100})
        raise KeyboardInterrupt
    assert not final.exists() and not list(final.parent.iterdir())
    # An entry in place but without its manifest (killed non-atomic writer, older kmodlab).
    make_entry(final, {"a.ko": b"\x7fELF" + b"x" * 100, "build.json": b"{}"})
    assert "no integrity.json" in verify(final)
    with paths.atomic_dir(final) as tmp:
        make_entry(tmp, {"a.ko": b"\x7fELF" + b"y" * 100, "build.json": b"{}"})
        write_manifest(tmp)
    assert verify(final) is None
    assert (final / "a.ko").read_bytes().endswith(b"y")         # the new one replaced it
    assert not [p for p in final.parent.iterdir() if ".partial-" in p.name]


def test_partial_names_carry_the_writer_pid(tmp_path: Path) -> None:
    with paths.atomic_dir(tmp_path / "entry") as tmp:
        assert tmp.name.startswith(f".entry.partial-{os.getpid()}-")


@pytest.mark.fault("cache_heal")
def test_size_and_hash_mismatches(tmp_path: Path) -> None:
    entry = make_entry(tmp_path / "e", {"key.ko": b"k" * 1000, "big/data.bin": b"d" * 5000,
                                        "other.txt": b"o" * 10})
    os.symlink("key.ko", entry / "link")
    data = write_manifest(entry, key=["key.ko"])
    assert data["key"] == ["key.ko"] and data["links"] == {"link": "key.ko"}
    assert verify(entry) is None and verify(entry, deep=True) is None

    (entry / "key.ko").write_bytes(b"k" * 999 + b"X")              # same size, other bytes
    assert verify(entry) == "key.ko does not match its recorded sha256"
    (entry / "key.ko").write_bytes(b"k" * 500)                     # truncated
    assert verify(entry) == "key.ko is 500 bytes, the manifest says 1000"
    (entry / "key.ko").write_bytes(b"k" * 1000)
    assert verify(entry) is None

    (entry / "big/data.bin").write_bytes(b"d" * 4999 + b"X")       # not a key file: deep only
    assert verify(entry) is None and verify(entry, every_file=True) is None
    assert verify(entry, deep=True) == "big/data.bin does not match its recorded sha256"
    (entry / "other.txt").unlink()
    assert verify(entry) is None
    assert verify(entry, every_file=True) == "other.txt is missing"
    (entry / "link").unlink()
    os.symlink("other.txt", entry / "link")
    assert verify(entry, every_file=True) == ("other.txt is missing (and 1 more problems)")

    (entry / MANIFEST).write_text("{trunc")
    assert "unreadable" in verify(entry)
    assert verify(tmp_path / "nope") == "it is missing"


def test_key_files_through_symlinks_and_outside(tmp_path: Path) -> None:
    entry = make_entry(tmp_path / "e", {"real/modpost": b"m" * 10})
    os.symlink("real", entry / "scripts")
    outside = make_entry(tmp_path / "out", {"image": b"i"}) / "image"
    data = write_manifest(entry, key=[entry / "scripts" / "modpost", outside, "absent"])
    assert data["key"] == ["real/modpost"]


@pytest.mark.fault("cache_heal")
def test_check_entry_discards_with_one_warning(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    entry = make_entry(tmp_path / "images" / "x", {"initramfs.cpio.gz": b"z" * 100})
    write_manifest(entry)
    assert check_entry(entry, "initramfs image") is None
    (entry / "initramfs.cpio.gz").write_bytes(b"z")
    caplog.set_level(logging.INFO)
    reason = check_entry(entry, "initramfs image")
    assert reason == "initramfs.cpio.gz is 1 bytes, the manifest says 100"
    assert not entry.exists()
    assert warnings_of(caplog) == [
        f"initramfs image {entry} is damaged: {reason}; rebuilding it"]
    assert check_entry(entry, "initramfs image") == ABSENT


def test_check_entry_adopts_under_the_lock(tmp_path: Path) -> None:
    entry = make_entry(tmp_path / "kernels" / "k", {"kernel.json": b"{}"})
    seen = []

    def adopt(e: Path) -> bool:
        with paths.try_lock(paths.entry_lock_path(e)) as free:
            seen.append(free)                   # we are called with the lock held
        write_manifest(e)
        return True

    assert check_entry(entry, "kernel", adopt=adopt) is None
    assert seen == [False] and verify(entry) is None


# ----------------------------------------------------------------------------- module builds

@pytest.fixture
def kbuild(monkeypatch: pytest.MonkeyPatch):
    from test_modules_build import FakeKbuild

    fake = FakeKbuild()
    monkeypatch.setattr(build_impl, "run_kbuild", fake)
    monkeypatch.setattr(build_impl.tree, "overlay_usable", lambda src: False)   # fake kbuild
    monkeypatch.setattr(build_impl, "_check_tools", lambda kernel: None)
    monkeypatch.setattr(build_impl, "compiler_tool", lambda kernel: "gcc-test")
    monkeypatch.setattr(build_impl, "compiler_version", lambda tool: "gcc-test 1.0")
    return fake


@pytest.mark.fault("cache_heal")
def test_corrupted_ko_is_rebuilt(kbuild, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from test_modules_build import fake_kernel

    kernel = fake_kernel(tmp_path)
    first = build_impl.build("kmalloc", None, kernel)
    good = first.ko_path.read_bytes()
    assert (first.build_dir / MANIFEST).is_file()
    first.ko_path.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])     # same size, bad magic
    caplog.set_level(logging.WARNING)
    again = build_impl.build("kmalloc", None, kernel)
    assert not again.cached and len(kbuild.calls) == 2
    assert again.ko_path.read_bytes() == good
    [line] = warnings_of(caplog)
    assert "module build" in line and "kml_kmalloc.ko does not match" in line
    assert build_impl.build("kmalloc", None, kernel).cached


@pytest.mark.fault("cache_heal")
def test_build_entry_without_manifest_is_rebuilt_once(kbuild, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from test_modules_build import fake_kernel

    kernel = fake_kernel(tmp_path)
    first = build_impl.build("percpu", None, kernel)
    (first.build_dir / MANIFEST).unlink()             # as an older kmodlab left it
    caplog.set_level(logging.WARNING)
    assert not build_impl.build("percpu", None, kernel).cached
    assert "no integrity.json" in warnings_of(caplog)[0]
    assert build_impl.build("percpu", None, kernel).cached
    assert len(kbuild.calls) == 2


@pytest.mark.fault("cache_heal")
def test_source_dir_build_with_missing_ko_is_rebuilt(kbuild, tmp_path: Path) -> None:
    from test_modules_build import fake_kernel

    src = tmp_path / "mymod"
    src.mkdir()
    (src / "Kbuild").write_text("obj-m := mymod.o\n")
    (src / "mymod.c").write_text("int x;\n")
    kernel = fake_kernel(tmp_path)
    first = build_impl.build_source_dir(src, kernel)
    first.ko_path.unlink()
    again = build_impl.build_source_dir(src, kernel)
    assert not again.cached and again.ko_path.is_file() and len(kbuild.calls) == 2


@pytest.mark.fault("cache_heal")
def test_build_error_names_a_damaged_kernel_entry(kbuild, tmp_path: Path) -> None:
    from test_modules_build import fake_kernel

    kernel = fake_kernel(tmp_path)
    make_entry(kernel.root, {"headers/include/linux/slab.h": b"#define X\n"})
    write_manifest(kernel.root, key=[])
    (kernel.root / "headers/include/linux/slab.h").unlink()
    kbuild.error = (1, "linux/slab.h: No such file or directory")
    with pytest.raises(build_impl.BuildError, match="kernel's cache entry .* is damaged "
                       r"\(headers/include/linux/slab.h is missing\).*kmodlab kernels fetch"):
        build_impl.build("kmalloc", None, kernel)


# ----------------------------------------------------------------------------- kernels

needs_dpkg = pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="needs dpkg-deb")


@pytest.fixture
def kernel_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A provisioned fake Debian kernel; apt replaced by the fake .debs (counts downloads)."""
    import test_kernels_provision as tkp

    from kmodlab.kernels import provisioning as prov

    apt = tkp.FakeApt(tkp.fake_debs(tmp_path))
    monkeypatch.setattr(prov, "default_apt", lambda *arch: apt)
    monkeypatch.setattr(prov, "resolve_newest_first", lambda *a, **k: [tkp.resolved()])
    kernel = prov.build_entry(tkp.resolved(), apt, lambda m, f: None)
    return prov, kernel, apt


@needs_dpkg
@pytest.mark.fault("cache_heal")
def test_kernel_entry_with_a_deleted_header_is_repaired_by_fetch(
        kernel_entry, caplog: pytest.LogCaptureFixture) -> None:
    prov, kernel, apt = kernel_entry
    assert prov.verify_kernel(kernel) is None
    common = kernel.root / "root/usr/src/linux-headers-6.1.0-99-common/Makefile"
    common.unlink()                       # half deleted, but no key file is touched
    assert prov.load_kernel(kernel.root) == kernel            # the cheap check does not see it
    assert prov.verify_kernel(kernel) == (
        "root/usr/src/linux-headers-6.1.0-99-common/Makefile is missing")
    downloads = len(apt.downloads)
    caplog.set_level(logging.WARNING)
    result = prov.fetch("x86_64", "6.1.0-99-cloud-amd64")
    assert result.repaired == "root/usr/src/linux-headers-6.1.0-99-common/Makefile is missing"
    assert common.is_file() and len(apt.downloads) > downloads
    assert prov.verify_kernel(result.kernel) is None and result.files > 5
    [line] = warnings_of(caplog)
    assert line.startswith(f"kernel {kernel.root} is damaged: ") and "fetching it again" in line
    # An intact entry: verified, nothing downloaded.
    downloads = len(apt.downloads)
    again = prov.fetch("x86_64", "6.1.0-99-cloud-amd64", deep=True)
    assert again.repaired is None and len(apt.downloads) == downloads


@needs_dpkg
@pytest.mark.fault("cache_heal")
def test_kernels_fetch_command_repairs_instead_of_saying_ready(
        kernel_entry, capsys: pytest.CaptureFixture[str]) -> None:
    from kmodlab import cli

    prov, kernel, _apt = kernel_entry
    fixdep = kernel.root / "root/usr/lib/linux-kbuild-6.1/scripts/basic/fixdep"
    fixdep.unlink()                 # a key file: provision's own check finds it, fetch says so
    assert cli.main(["kernels", "fetch", "--arch", "x86_64", "--kernel", kernel.release]) == 0
    out = capsys.readouterr().out
    assert "was damaged (" in out and "fixdep is missing" in out and "fetched again" in out
    assert fixdep.is_file() and prov.verify_kernel(kernel) is None
    assert cli.main(["kernels", "fetch", "--arch", "x86_64", "--kernel", kernel.release,
                     "--deep"]) == 0
    assert "verified (" in capsys.readouterr().out


@needs_dpkg
@pytest.mark.fault("cache_heal")
def test_kernel_with_a_damaged_key_file_is_fetched_again(
        kernel_entry, caplog: pytest.LogCaptureFixture) -> None:
    prov, kernel, apt = kernel_entry
    downloads = len(apt.downloads)
    dep = kernel.modules_dir / "modules.dep"
    dep.write_bytes(dep.read_bytes() + b"junk\n")
    caplog.set_level(logging.WARNING)
    assert prov.load_kernel(kernel.root) is None
    assert not kernel.root.exists()
    [line] = warnings_of(caplog)
    assert "modules.dep is" in line and "it will be fetched again" in line
    assert prov.provision("x86_64", "6.1.0-99-cloud-amd64") == kernel
    assert prov.verify_kernel(kernel) is None and len(apt.downloads) > downloads


@needs_dpkg
@pytest.mark.fault("cache_heal")
def test_kernel_entry_without_manifest_is_verified_and_adopted(
        kernel_entry, caplog: pytest.LogCaptureFixture) -> None:
    prov, kernel, apt = kernel_entry
    (kernel.root / MANIFEST).unlink()            # as the previous kmodlab wrote it
    (kernel.root.parent / ".locks" / f"{kernel.root.name}.sealed").unlink()
    downloads = len(apt.downloads)
    caplog.set_level(logging.WARNING)
    assert prov.load_kernel(kernel.root) == kernel
    assert (kernel.root / MANIFEST).is_file() and prov.verify_kernel(kernel, deep=True) is None
    assert warnings_of(caplog) == [] and len(apt.downloads) == downloads
    # One that fails the structural checks is not adopted: discarded, fetched again.
    (kernel.root / MANIFEST).unlink()
    (kernel.root.parent / ".locks" / f"{kernel.root.name}.sealed").unlink()
    (kernel.headers_dir / "Module.symvers").unlink()
    assert prov.load_kernel(kernel.root) is None and not kernel.root.exists()
    assert "no integrity.json" in warnings_of(caplog)[0]
    assert prov.provision("x86_64", "6.1.0-99-cloud-amd64") == kernel
    assert len(apt.downloads) > downloads


@needs_dpkg
@pytest.mark.fault("cache_heal")
def test_kernel_entry_that_lost_its_manifest_is_not_adopted(
        kernel_entry, caplog: pytest.LogCaptureFixture) -> None:
    """A half-finished rm -rf that took integrity.json (and a header nobody checks structurally)
    must not pass for an entry from before manifests."""
    prov, kernel, _apt = kernel_entry
    (kernel.root / MANIFEST).unlink()
    (kernel.root / "root/usr/src/linux-headers-6.1.0-99-common/Makefile").unlink()
    caplog.set_level(logging.WARNING)
    assert prov.load_kernel(kernel.root) is None and not kernel.root.exists()
    [line] = warnings_of(caplog)
    assert "no integrity.json" in line
    assert prov.verify_kernel(prov.provision("x86_64", "6.1.0-99-cloud-amd64")) is None


# ----------------------------------------------------------------------------- snapshots

def stream(body: bytes) -> bytes:
    """A migration stream as QEMU 7.2 writes it: magic, version, sections, EOF, vmdesc JSON."""
    vmdesc = json.dumps({"page_size": 4096, "devices": []}).encode()
    return b"QEVM\x00\x00\x00\x03" + body + b"\x00\x06" + struct.pack(">I", len(vmdesc)) + vmdesc


class FakeQMP:
    """Just enough QMP for save_snapshot, behaving as QEMU does: ``getfd`` takes the pipe,
    ``migrate`` writes the stream into it from another thread (QEMU's migration thread) and
    closes it; ``status`` is what query-migrate then reports; ``hang`` keeps the pipe open."""

    def __init__(self, payload: bytes, status: str = "completed", hang: bool = False) -> None:
        self.payload = payload
        self.status = status
        self.hang = hang
        self.calls: list[str] = []
        self.fds: dict[str, int] = {}

    def pass_fd(self, name: str, fd: int) -> None:
        self.calls.append("getfd")
        self.fds[name] = os.dup(fd)

    def _write(self, fd: int) -> None:
        with os.fdopen(fd, "wb") as out:
            out.write(self.payload)
            if self.hang:
                time.sleep(2)

    def execute(self, command: str, **args: object) -> dict:
        self.calls.append(command)
        if command == "migrate":
            uri = str(args["uri"])
            assert uri.startswith("fd:")
            threading.Thread(target=self._write, args=(self.fds.pop(uri[3:]),),
                             daemon=True).start()
        if command == "query-migrate":
            return {"status": self.status, "error-desc": "Unable to write to socket"}
        return {}


@pytest.mark.fault("cache_heal")
def test_snapshot_save_check_and_damage(private_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(manifest, "QUICK_HASH_LIMIT", 1000)   # a real state is ~80 MB: sized
    entry = snapshot.snapshot_path("k" * 24)
    assert snapshot.usable_snapshot(entry) == (None, None)
    qmp = FakeQMP(stream(os.urandom(100_000)))
    assert snapshot.save_snapshot(qmp, entry) is not None
    assert (entry / "state").read_bytes() == qmp.payload and verify(entry, deep=True) is None
    assert snapshot.usable_snapshot(entry) == (entry / "state", None)
    # Intact: a second save does nothing, nor does one while another process saves it.
    assert snapshot.save_snapshot(FakeQMP(stream(b"other")), entry) is None
    assert (entry / "state").read_bytes() == qmp.payload
    # A restore that failed for another reason: the hash matches, the snapshot stays.
    assert snapshot.snapshot_damage(entry) is None and entry.is_dir()
    # Same size, other bytes: only the hash after a failed restore proves it; then it goes.
    state = entry / "state"
    state.write_bytes(b"X" + qmp.payload[1:])
    assert snapshot.usable_snapshot(entry) == (state, None)
    caplog.set_level(logging.WARNING)
    assert snapshot.snapshot_damage(entry) == "state does not match its recorded sha256"
    assert not entry.exists() and len(warnings_of(caplog)) == 1


@pytest.mark.fault("cache_heal")
def test_truncated_snapshot_is_discarded_before_qemu_sees_it(
        private_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    entry = snapshot.snapshot_path("t" * 24)
    good = stream(b"x" * 5000)
    snapshot.save_snapshot(FakeQMP(good), entry)
    with open(entry / "state", "r+b") as fh:
        fh.truncate(1000)
    caplog.set_level(logging.WARNING)
    assert snapshot.usable_snapshot(entry) == (
        None, f"state is 1000 bytes, the manifest says {len(good)}")
    assert not entry.exists()
    [line] = warnings_of(caplog)
    assert line == (f"snapshot {entry} is damaged: state is 1000 bytes, the manifest says "
                    f"{len(good)}; cold boot")
    assert snapshot.save_snapshot(FakeQMP(stream(b"y" * 5000)), entry) is not None
    assert snapshot.usable_snapshot(entry)[0] is not None


def test_a_save_in_progress_elsewhere_is_not_duplicated(private_cache: Path) -> None:
    entry = snapshot.snapshot_path("s" * 24)
    with paths.entry_lock(entry):
        assert snapshot.save_snapshot(FakeQMP(stream(b"x")), entry) is None
    assert not entry.exists()


@pytest.mark.fault("cache_heal")
def test_restore_failing_for_another_reason_keeps_the_snapshot(
        private_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from test_modules_build import fake_kernel

    from kmodlab.guest import Guest, GuestState

    entry = snapshot.snapshot_path("r" * 24)
    snapshot.save_snapshot(FakeQMP(stream(b"state" * 1000)), entry)
    guest = Guest(fake_kernel(tmp_path))
    launched = []

    def failing_launch(incoming: Path | None) -> None:
        launched.append(incoming)
        raise GuestError("QEMU exited with status 1: load of migration failed: Invalid argument")

    monkeypatch.setattr(guest, "_launch", failing_launch)
    caplog.set_level(logging.WARNING)
    try:
        guest._try_restore(entry)
    finally:
        guest.stop()
    assert launched == [entry / "state"] and guest.timings.booted_from == ""
    assert guest.state == GuestState.STOPPED
    assert verify(entry, deep=True) is None                     # kept, untouched
    [line] = warnings_of(caplog)
    assert "load of migration failed" in line and "intact, so kept; cold boot" in line


@pytest.mark.fault("cache_heal")
def test_a_stream_cut_short_is_not_sealed(private_cache: Path) -> None:
    """QEMU closes the stream early yet reports "completed": the stream's own end decides."""
    entry = snapshot.snapshot_path("c" * 24)
    whole = stream(os.urandom(50_000))
    with pytest.raises(GuestError, match="incomplete"):
        snapshot.save_snapshot(FakeQMP(whole[:40_000]), entry)
    assert not entry.exists() and not list(entry.parent.glob(".*partial*"))
    assert snapshot.save_snapshot(FakeQMP(whole), entry) is not None
    assert snapshot.stream_complete(entry / "state")
    bad = entry.parent / "bad"
    for data in (b"", b"XXXX" + whole[4:], whole + b"\0", whole[:-1]):
        bad.write_bytes(data)
        assert not snapshot.stream_complete(bad)


@pytest.mark.fault("cache_heal")
def test_a_failed_or_stuck_save_keeps_nothing(private_cache: Path) -> None:
    """A migration QEMU reports failed, or one that never ends, leaves no snapshot behind."""
    entry = snapshot.snapshot_path("f" * 24)
    with pytest.raises(GuestError, match="failed: Unable to write to socket"):
        snapshot.save_snapshot(FakeQMP(stream(b"x" * 1000), status="failed"), entry)
    assert not entry.exists() and not list(entry.parent.glob(".*partial*"))
    stuck = FakeQMP(stream(b"x" * 1000), status="active", hang=True)
    with pytest.raises(GuestError, match="took too long"):
        snapshot.save_snapshot(stuck, entry, timeout=0.3)
    assert stuck.calls[-1] == "migrate_cancel"
    assert not entry.exists() and not list(entry.parent.glob(".*partial*"))


@pytest.mark.fault("cache_heal")
def test_the_saved_state_is_hashed_once(private_cache: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's sha256 of the state is the one computed while it streamed in."""
    hashed: list[Path] = []
    real = manifest._sha256
    monkeypatch.setattr(manifest, "_sha256", lambda p: hashed.append(p) or real(p))
    entry = snapshot.snapshot_path("h" * 24)
    assert snapshot.save_snapshot(FakeQMP(stream(os.urandom(10_000))), entry) is not None
    assert hashed == [] and verify(entry, deep=True) is None


@pytest.mark.fault("cache_heal")
def test_legacy_snapshot_files_are_swept(private_cache: Path) -> None:
    folder = paths.cache_dir("snapshots")
    old = folder / ("a" * 24 + ".state")
    young = folder / ("b" * 24 + ".state")
    killed = folder / ("c" * 24 + f".state.partial-{dead_pid()}-abcd1234")
    saving = folder / ("d" * 24 + f".state.partial-{os.getpid()}-abcd1234")
    for p in (old, young, killed, saving):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sorted(snapshot.sweep_legacy_snapshots()) == sorted([old, killed])
    assert young.exists() and saving.exists()


# ----------------------------------------------------------------------------- sweeping

@pytest.mark.fault("cache_heal")
def test_sweep_leaves_a_locked_partial_and_removes_a_stale_one(private_cache: Path) -> None:
    builds = paths.cache_dir("builds")
    pid = dead_pid()
    stale = builds / f".mod-a.partial-{pid}-xyz"
    locked = builds / f".mod-b.partial-{pid}-xyz"
    live = builds / f".mod-c.partial-{os.getpid()}-xyz"
    legacy_young = builds / ".mod-d.partial-q1w2e3r4"
    legacy_old = builds / ".mod-e.partial-t5y6u7i8"
    for p in (stale, locked, live, legacy_young, legacy_old):
        make_entry(p, {"x.o": b"o"})
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    entry = builds / "mod-a"
    make_entry(entry, {"x.ko": b"k"})        # the complete entry itself is never swept
    with paths.entry_lock(builds / "mod-b"):
        removed = paths.sweep_partials(builds)
    assert sorted(removed) == sorted([stale, legacy_old])
    assert locked.exists() and live.exists() and legacy_young.exists() and entry.exists()
    assert paths.sweep_partials(builds) == [locked]


@pytest.mark.fault("cache_heal")
def test_sweep_socket_dirs(tmp_path: Path) -> None:
    root = tmp_path / "tmp"
    root.mkdir()
    pid = dead_pid()
    gone = make_entry(root / f"kml-{pid}-aaaa", {"cmd.sock": b""})
    mine = make_entry(root / f"kml-{os.getpid()}-bbbb", {"x": b""})
    orphan = root / f"kml-{pid}-cccc"                 # owner dead, its QEMU still listening
    orphan.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(orphan / "qmp.sock"))
    listener.listen(1)
    boot_young = make_entry(root / "kml-q1w2e3r4", {"x": b""})
    boot_old = make_entry(root / "kml-t5y6u7i8", {"x": b""})
    os.utime(boot_old, (time.time() - 7200, time.time() - 7200))
    other = make_entry(root / "unrelated", {"x": b""})
    try:
        removed = paths.sweep_socket_dirs(root)
    finally:
        listener.close()
    assert sorted(removed) == sorted([gone, boot_old])
    assert mine.exists() and orphan.exists() and boot_young.exists() and other.exists()
    assert paths.sweep_socket_dirs(root) == [orphan]        # its QEMU is gone now


@pytest.mark.fault("cache_heal")
def test_sweep_run_dirs(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    pid, me = dead_pid(), os.getpid()
    names = [f"x86_64-6.1-20250101-000000-{pid}-0", f"x86_64-6.1-20250101-000001-{me}-1",
             f"x86_64-6.1-20250101-000002-{me}-2", f"x86_64-6.1-20250101-000003-{pid}-3",
             "interactive", f"arm64-6.12-20250101-000004-{me}-4"]
    for i, name in enumerate(names):
        make_entry(root / name, {"console.log": b""})
        os.utime(root / name, (1000 + i, 1000 + i))
    live = {root / names[1]}
    removed = paths.sweep_run_dirs(root, keep=2, in_use=live)
    assert sorted(p.name for p in removed) == sorted([names[0], names[2]])
    assert {p.name for p in root.iterdir()} == {names[1], names[3], names[4], names[5]}


def test_guest_socket_dir_names_its_owner(tmp_path: Path) -> None:
    from test_modules_build import fake_kernel

    from kmodlab.guest import Guest

    guest = Guest(fake_kernel(tmp_path))
    try:
        assert guest._sock_dir.name.startswith(f"kml-{os.getpid()}-")
        assert guest._sock_dir not in paths.sweep_socket_dirs(guest._sock_dir.parent)
    finally:
        guest.stop()
    assert not guest._sock_dir.exists()


@pytest.mark.fault("cache_heal")
def test_remove_entry_is_atomic_and_sweepable(tmp_path: Path) -> None:
    entry = make_entry(tmp_path / "images" / "e", {"a": b"1"})
    paths.remove_entry(entry)
    assert not entry.exists() and list((tmp_path / "images").iterdir()) == []
    paths.remove_entry(entry)                       # absent: nothing to do


def test_manifest_json_is_plain_data(tmp_path: Path) -> None:
    entry = make_entry(tmp_path / "e", {"f": b"abc"})
    write_manifest(entry)
    data = json.loads((entry / MANIFEST).read_text())
    assert data["files"]["f"] == [3, manifest._sha256(entry / "f")]
    assert data["format"] == manifest.FORMAT and data["key"] == ["f"]
