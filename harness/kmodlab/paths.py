"""Where kmodlab keeps what it downloads and builds, and how entries there are written and swept.

One cache root (``$KMODLAB_CACHE``, else ``$XDG_CACHE_HOME/kmodlab``, else ``~/.cache/kmodlab``) so
that CI can keep it between runs and a user can delete it in one go.

Every cache entry (``kernels/<release>``, ``builds/<name>``, ``images/<name>``,
``snapshots/<key>``) is a folder written by :func:`atomic_dir` under :func:`entry_lock`; the
writer puts its integrity manifest in last (``kmodlab.manifest``).  What a killed process leaves
behind is swept by :func:`sweep`, which only ever removes something nobody can still be writing:
a ``.NAME.partial-*`` folder whose entry lock is free (and whose writer's PID is gone), a
``/tmp/kml-*`` socket folder whose owner is dead and whose sockets no process holds.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_FOLDERS = ("kernels", "builds", "images", "snapshots")
"""Cache folders whose entries are written by atomic_dir under entry_lock (swept by sweep())."""

PARTIAL = ".partial-"
SOCKET_DIR_PREFIX = "kml-"
SOCKET_DIR_ROOT = Path("/tmp")
NO_PID_GRACE = 3600.0
"""A partial or socket folder without an owner PID in its name (written by an older kmodlab, or
by ``kmodlab boot``) is left alone until it is this old, on top of the other checks."""


def cache_root() -> Path:
    env = os.environ.get("KMODLAB_CACHE")
    if env:
        root = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "kmodlab"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _aside(final: Path, what: str) -> Path:
    """A sibling name that the sweep recognises as a partial of ``final`` owned by this process."""
    return final.parent / f".{final.name}{PARTIAL}{os.getpid()}-{what}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final``; rename it into place only if the block succeeds.

    This is how every cache entry is written, so an interrupted download or build never leaves a
    half-written entry that a later run would trust.  The temporary name carries the writer's
    PID (``.NAME.partial-<pid>-*``) so that :func:`sweep` can tell a live writer from a dead one.
    An entry being replaced is first renamed aside, so ``final`` is never half deleted.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}{PARTIAL}{os.getpid()}-", dir=final.parent))
    try:
        yield tmp
        old = None
        if final.exists() or final.is_symlink():
            old = _aside(final, "old")
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_entry(entry: Path) -> None:
    """Delete a cache entry: renamed aside first (atomic), so nobody sees it half deleted; a
    removal killed midway leaves a partial that :func:`sweep` finishes."""
    if not (entry.exists() or entry.is_symlink()):
        return
    aside = _aside(entry, "removed")
    try:
        entry.rename(aside)
    except FileNotFoundError:
        return
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if needed) for the duration of the block.

    Cache entries are built under it, so parallel processes (pytest-xdist workers, two CLIs)
    build an entry once and the second one finds it done.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Like :func:`file_lock` without waiting: yields True if the lock is now held, False if
    another holder (another process, or another open of it in this one) has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def entry_lock_path(entry: Path) -> Path:
    """The lock a cache entry is written, repaired and discarded under: ``.locks/<name>.lock``
    next to it (one convention for every cache folder, so the sweep knows it)."""
    return entry.parent / ".locks" / f"{entry.name}.lock"


def entry_lock(entry: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(entry_lock_path(entry))


# ------------------------------------------------------------------------------------ sweeping

def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except OSError:
        return 0.0


def _rm(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_OWNER_RE = re.compile(r"^(\d+)-")


def sweep_partials(folder: Path) -> list[Path]:
    """Remove ``.NAME.partial-*`` leftovers in ``folder`` that no live process is writing.

    A partial is removed only while holding its entry's lock (non-blocking: a held lock means a
    live writer), and only when the PID in its name is gone (a partial without one, from an
    older kmodlab, must also be an hour old).  Returns what was removed.
    """
    removed = []
    try:
        candidates = sorted(p for p in folder.iterdir() if p.name.startswith(".") and PARTIAL in p.name)
    except OSError:
        return removed
    for partial in candidates:
        name, _, rest = partial.name[1:].rpartition(PARTIAL)
        owner = _OWNER_RE.match(rest)
        if owner:
            if int(owner[1]) == os.getpid() or pid_alive(int(owner[1])):
                continue
        elif _age(partial) < NO_PID_GRACE:
            continue
        with try_lock(entry_lock_path(folder / name)) as locked:
            if locked and (partial.exists() or partial.is_symlink()):
                _rm(partial)
                removed.append(partial)
    return removed


def bound_unix_sockets() -> set[str] | None:
    """Paths of the Unix sockets some process has bound (``/proc/net/unix``); None if unknown."""
    try:
        lines = Path("/proc/net/unix").read_text(errors="replace").splitlines()[1:]
    except OSError:
        return None
    paths = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[-1].startswith("/"):
            paths.add(fields[-1])
    return paths


def sweep_socket_dirs(root: Path = SOCKET_DIR_ROOT) -> list[Path]:
    """Remove per-run socket folders (``/tmp/kml-<pid>-*``) whose QEMU and owner are gone.

    Kept: folders of another user, of a live owner PID, or with a socket some process (a QEMU
    that outlived its owner) still has bound; folders without an owner PID in the name (``kmodlab
    boot``, older kmodlab) unless an hour old.  Nothing is removed if ``/proc/net/unix`` can't
    be read.
    """
    removed: list[Path] = []
    try:
        candidates = sorted(root.glob(f"{SOCKET_DIR_PREFIX}*"))
    except OSError:
        return removed
    bound: set[str] | None = None
    for folder in candidates:
        try:
            st = folder.lstat()
        except OSError:
            continue
        if not folder.is_dir() or folder.is_symlink() or st.st_uid != os.getuid():
            continue
        owner = _OWNER_RE.match(folder.name[len(SOCKET_DIR_PREFIX):])
        if owner:
            if int(owner[1]) == os.getpid() or pid_alive(int(owner[1])):
                continue
        elif _age(folder) < NO_PID_GRACE:
            continue
        if bound is None:
            bound = bound_unix_sockets()
            if bound is None:
                return removed
        try:
            held = any(str(p) in bound for p in folder.iterdir())
        except OSError:
            continue
        if not held:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


_RUN_OWNER_RE = re.compile(r"-(\d+)-\d+$")


def sweep_run_dirs(root: Path, keep: int, in_use: Iterable[Path] = ()) -> list[Path]:
    """Keep the newest ``keep`` run folders (``<label>-<stamp>-<pid>-<n>``); remove older ones
    whose owner PID is gone, or that are this process's and no longer in ``in_use``.  Folders of
    live processes and folders not named that way are never touched."""
    live = {Path(p) for p in in_use}
    runs = []
    for path in root.iterdir() if root.is_dir() else ():
        owner = _RUN_OWNER_RE.search(path.name)
        if not owner or not path.is_dir():
            continue
        try:
            runs.append((path.stat().st_mtime, path, int(owner[1])))
        except OSError:
            continue
    runs.sort()
    removed = []
    for _mtime, path, pid in runs[:max(0, len(runs) - keep)]:
        if pid == os.getpid():
            if path in live:
                continue
        elif pid_alive(pid):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def sweep() -> list[Path]:
    """Remove every cache folder's stale partials and the stale socket folders; never raises.

    Cheap (a few directory listings); a guest runs it when it starts.
    """
    removed: list[Path] = []
    try:
        for folder in ENTRY_FOLDERS:
            removed += sweep_partials(cache_dir(folder))
        removed += sweep_socket_dirs()
    except OSError as exc:
        log.debug("sweeping the cache stopped: %s", exc)
    if removed:
        log.info("swept %d stale cache leftover(s): %s", len(removed),
                 ", ".join(p.name for p in removed[:5]))
    return removed
