"""Saved guest states: boot once, then start every later guest from the saved state.

A snapshot is QEMU migration state written to a file.  It is keyed by everything that shaped the
guest (QEMU version, arch profile, kernel, initramfs content, memory, CPUs, options), so a change
to any of them simply misses the cache.  Restoring costs a fraction of a boot.

A snapshot is a cache entry like any other (``kmodlab.manifest``): the folder
``snapshots/<key>/`` holds the migration stream ``state`` and its integrity manifest, written
last, by :func:`save_snapshot` under the entry lock.  :func:`usable_snapshot` checks its size
before a restore (a truncated stream is discarded with one warning, not fed to QEMU);
:func:`snapshot_damage` hashes it after a restore failed, and only a snapshot proved damaged
that way is deleted.  Snapshots of the previous layout (``snapshots/<key>.state``, no manifest)
are never used: the key format changed, so each configuration is saved once more, and
:func:`sweep_legacy_snapshots` removes the old files (and killed saves' ``.partial-<pid>-*``
files) once nobody can be using them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import select
import struct
import subprocess
import time
from dataclasses import asdict
from functools import cache
from pathlib import Path

from kmodlab.manifest import ABSENT, check_entry, verify, write_manifest
from kmodlab.paths import (
    NO_PID_GRACE,
    atomic_dir,
    cache_dir,
    entry_lock_path,
    pid_alive,
    try_lock,
)
from kmodlab.qemu.command import QemuConfig
from kmodlab.qemu.qmp import QMPClient, QMPError
from kmodlab.registry.arch import ArchProfile

log = logging.getLogger(__name__)


@cache
def qemu_version(binary: str) -> str:
    """First line of ``<binary> --version`` (part of every snapshot key: a saved state only
    restores into the QEMU that wrote it).  Remembered on disk by the binary's path, size, inode
    and mtime, so a warm start does not spend ~20 ms running QEMU to ask; an upgraded QEMU is a
    new file and is asked again."""
    import shutil

    found = shutil.which(binary)
    try:
        st = Path(found).stat() if found else None
    except OSError:
        st = None
    identity = (f"{Path(found).resolve()}:{st.st_size}:{st.st_ino}:{st.st_mtime_ns}"
                if found and st else None)
    memo = cache_dir("state") / "qemu-versions.json"
    known: dict[str, str] = {}
    if identity is not None:
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}
        if isinstance(known, dict) and isinstance(known.get(identity), str):
            return known[identity]
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                             check=False)
        version = out.stdout.splitlines()[0] if out.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if identity is not None and version != "unknown":
        known = known if isinstance(known, dict) else {}
        known[identity] = version
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(known))
            tmp.replace(memo)          # atomic: a reader sees the old or the new file
        except OSError:
            pass
    return version


def _file_identity(path: Path) -> str:
    """Path, size and mtime: cache entries are written once (atomically) and never edited, and a
    user's own kernel rebuilt in place gets a new mtime.  Hashing a 32 MB image on every guest
    start would cost ~0.1 s."""
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def snapshot_key(profile: ArchProfile, config: QemuConfig, kernel_release: str) -> str:
    shaping = {
        "qemu": qemu_version(profile.qemu_binary),
        "profile": asdict(profile),
        "kernel_release": kernel_release,
        "kernel_image": _file_identity(config.kernel_image),
        "initrd": _file_identity(config.initrd),
        "config": config.shaping_fields(),
        "format": 2,     # 2: a folder with a manifest (1: a bare <key>.state)
    }
    blob = json.dumps(shaping, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


STATE = "state"
STREAM_MAGIC = b"QEVM"
STREAM_END = b"\x00\x06"    # QEMU_VM_EOF, QEMU_VM_VMDESCRIPTION (migration/savevm.c)
STREAM_TAIL = 4 * 1024 * 1024
STREAM_FD = "kmodlab-snapshot"
"""The name the save's pipe has in QEMU (QMP ``getfd``; migration URI ``fd:<name>``)."""
PIPE_BYTES = 1 << 20
"""Pipe capacity asked for (fcntl F_SETPIPE_SZ): fewer wake-ups per 100 MB stream."""


def stream_complete(path: Path) -> bool:
    """Does ``path`` hold a whole QEMU migration stream?

    It starts with ``QEVM``; QEMU 7.2's precopy ends it with QEMU_VM_EOF, QEMU_VM_VMDESCRIPTION,
    a be32 length and exactly that much JSON
    (qemu_savevm_state_complete_precopy_non_iterable()).  A stream QEMU cut short (it failed,
    or was killed, mid-save) lacks that end, whatever ``query-migrate`` said.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if fh.read(len(STREAM_MAGIC)) != STREAM_MAGIC:
                return False
            fh.seek(max(len(STREAM_MAGIC), size - STREAM_TAIL))
            tail = fh.read()
    except OSError:
        return False
    at = tail.rfind(STREAM_END)
    while at >= 0:
        if at + 6 <= len(tail):
            (length,) = struct.unpack(">I", tail[at + 2:at + 6])
            if at + 6 + length == len(tail):
                try:
                    json.loads(tail[at + 6:])
                except ValueError:
                    return False
                return True
        at = tail.rfind(STREAM_END, 0, at)
    return False


def _migrate_into(qmp: QMPClient, state: Path, deadline: float) -> str:
    """Migrate the guest into ``state`` through a pipe this process reads; return its sha256.

    QEMU writes the stream into the pipe's write end (handed over with ``getfd``) and closes it
    when the migration ends, so end-of-file is the exact moment the stream is whole: no polling,
    no helper process, and the hash the manifest needs is computed on the way to the disk
    instead of by reading ~100 MB a second time.
    """
    read_end, write_end = os.pipe()
    try:
        try:
            fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass                                    # over /proc/sys/fs/pipe-max-size: 64 KiB
        try:
            qmp.pass_fd(STREAM_FD, write_end)
        finally:
            os.close(write_end)                     # QEMU holds its own copy now
        qmp.execute("migrate", uri=f"fd:{STREAM_FD}")
        digest = hashlib.sha256()
        with open(state, "wb") as out:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    qmp.execute("migrate_cancel")
                    raise QMPError("saving the guest state took too long: cancelled")
                if not select.select([read_end], [], [], min(left, 1.0))[0]:
                    continue
                chunk = os.read(read_end, PIPE_BYTES)
                if not chunk:
                    break                           # QEMU closed the stream: done or failed
                out.write(chunk)
                digest.update(chunk)
    finally:
        os.close(read_end)
    while True:
        info = qmp.execute("query-migrate")
        status = info.get("status")
        if status == "completed":
            return digest.hexdigest()
        if status in ("failed", "cancelled"):
            raise QMPError(f"saving the guest state failed: {info.get('error-desc', status)}")
        if time.monotonic() > deadline:
            raise QMPError(f"QEMU closed the saved state but reports the migration {status}")
        time.sleep(0.005)


def snapshot_path(key: str) -> Path:
    """The snapshot entry (a folder) for ``key``; the migration stream is ``<entry>/state``."""
    return cache_dir("snapshots") / key


def usable_snapshot(entry: Path) -> tuple[Path | None, str | None]:
    """(the state file to restore from, None), or (None, why not) when the entry is absent or
    damaged; a damaged one (manifest missing, state of the wrong size) has been discarded with
    one warning."""
    reason = check_entry(entry, "snapshot", then="cold boot")
    if reason is None:
        return entry / STATE, None
    return None, None if reason == ABSENT else reason


def snapshot_damage(entry: Path) -> str | None:
    """After a failed restore: hash the state against its manifest.  Returns the damage found
    (the entry is then deleted, with one warning) or None: the snapshot is intact and kept, so
    the failure had another cause."""
    reason = check_entry(entry, "snapshot", deep=True, then="deleting it; cold boot")
    return None if reason == ABSENT else reason


def save_snapshot(qmp: QMPClient, entry: Path, timeout: float = 60.0) -> float | None:
    """Migrate the running guest's state into the snapshot entry ``entry``; the guest is paused
    afterwards.  Returns the seconds it took, or None if nothing was saved because an intact
    snapshot is already there or another process is saving it right now.

    The default migration bandwidth cap (128 MiB/s: MAX_THROTTLE in QEMU 7.2's
    migration/migration.c, migration/options.c in later QEMU) makes a save 3x slower
    (docs/guest-notes.md, Snapshots), so it is lifted first.  The stream goes into a temporary
    folder under the entry lock, the manifest is written after it, and the folder is renamed
    into place: a crash mid-save never leaves a snapshot that a later restore would trust.
    """
    start = time.monotonic()
    with try_lock(entry_lock_path(entry)) as locked:
        # pytest-xdist workers may want the same snapshot at once: one saves, the others go on.
        if not locked or (entry.exists() and verify(entry) is None):
            return None
        with atomic_dir(entry) as tmp:
            tmp.chmod(0o755)           # mkdtemp makes it private; a snapshot file was readable
            state = tmp / STATE
            qmp.execute("migrate-set-parameters", **{"max-bandwidth": 10 * 1024**3})
            digest = _migrate_into(qmp, state, deadline=start + timeout)
            if not stream_complete(state):
                raise QMPError(f"the saved guest state is incomplete ({state.stat().st_size} "
                               "bytes, no end of stream): not keeping it")
            write_manifest(tmp, hashed={STATE: digest})      # last: the state is complete
    return time.monotonic() - start


def sweep_legacy_snapshots(folder: Path | None = None) -> list[Path]:
    """Remove files of the previous snapshot layout: ``<key>.state`` (unreachable since the key
    format changed) once an hour old, and ``<key>.state.partial-<pid>-*`` of dead savers."""
    folder = folder or cache_dir("snapshots")
    removed = []
    now = time.time()
    for path in sorted(folder.glob("*.state*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        name, sep, rest = path.name.partition(".partial-")
        pid = rest.split("-", 1)[0]
        if sep and pid.isdigit():
            if int(pid) == os.getpid() or pid_alive(int(pid)):
                continue                        # a save in progress
        elif not name.endswith(".state"):
            continue
        else:
            try:
                if now - path.stat().st_mtime < NO_PID_GRACE:
                    continue                    # an older kmodlab may be restoring from it
            except OSError:
                continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
