"""Saved guest states: boot once, then start every later guest from the saved state.

A snapshot is QEMU migration state written to a file.  It is keyed by everything that shaped the
guest (QEMU version, arch profile, kernel, initramfs content, memory, CPUs, options), so a change
to any of them simply misses the cache.  Restoring costs a fraction of a boot.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import subprocess
import time
from dataclasses import asdict
from functools import cache
from pathlib import Path

from kmodlab.paths import cache_dir
from kmodlab.qemu.command import QemuConfig
from kmodlab.qemu.qmp import QMPClient, QMPError
from kmodlab.registry.arch import ArchProfile

log = logging.getLogger(__name__)


@cache
def qemu_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                             check=False)
        return out.stdout.splitlines()[0] if out.stdout else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


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
        "format": 1,
    }
    blob = json.dumps(shaping, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def snapshot_path(key: str) -> Path:
    return cache_dir("snapshots") / f"{key}.state"


def save_snapshot(qmp: QMPClient, path: Path, timeout: float = 60.0) -> float:
    """Migrate the running guest's state into ``path``; the guest is paused afterwards.

    The default migration bandwidth cap (128 MiB/s: MAX_THROTTLE in QEMU 7.2's
    migration/migration.c, migration/options.c in later QEMU) makes a save 3x slower
    (docs/guest-notes.md, Snapshots), so it is lifted first.  Written to a temporary name and
    renamed: a crash mid-save never leaves a truncated snapshot that a later restore would trust.
    """
    start = time.monotonic()
    # Unique per process: pytest-xdist workers may save the same snapshot at the same time;
    # each writes its own file and the atomic rename makes one of them win.
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    qmp.execute("migrate-set-parameters", **{"max-bandwidth": 10 * 1024**3})
    qmp.execute("migrate", uri=f"exec:cat > '{partial}'")
    deadline = start + timeout
    while True:
        info = qmp.execute("query-migrate")
        status = info.get("status")
        if status == "completed":
            break
        if status in ("failed", "cancelled"):
            partial.unlink(missing_ok=True)
            raise QMPError(f"saving the guest state failed: {info.get('error-desc', status)}")
        if time.monotonic() > deadline:
            qmp.execute("migrate_cancel")
            partial.unlink(missing_ok=True)
            raise QMPError(f"saving the guest state took over {timeout:.0f} s")
        time.sleep(0.02)
    partial.rename(path)
    return time.monotonic() - start
