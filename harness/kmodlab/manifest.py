"""Integrity manifests: how every cache entry proves it is whole before it is used.

One mechanism for every cache kind (kernel trees, module builds, initramfs images, snapshots):

* The writer calls :func:`write_manifest` LAST, inside its :func:`kmodlab.paths.atomic_dir`
  block, after every other file is in place.  It records each file's size and sha256 (and each
  symlink's target) in ``integrity.json``, plus the *key* files checked on every use.  An entry
  that lacks the manifest was never completed (or predates it), so it is not trusted.
* A user calls :func:`check_entry` (or :func:`verify` for a report only).  The default check is
  cheap: it reads the manifest and stats the key files, hashing those up to
  ``QUICK_HASH_LIMIT``.  ``every_file=True`` stats every recorded file and link (what ``kmodlab
  kernels fetch`` runs); ``deep=True`` also hashes every file.
* A damaged entry is discarded under its entry lock with ONE ``logging.warning`` line naming
  what was wrong; the caller then rebuilds (re-fetches, cold-boots) as if it had never been
  there.

Entries written by a kmodlab without manifests: the caller may pass ``adopt``, which verifies such
an entry its own way and writes the manifest (kernel trees do: re-downloading is expensive);
otherwise (builds, images, snapshots) the entry counts as damaged and is rebuilt once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kmodlab.paths import entry_lock, remove_entry

log = logging.getLogger("kmodlab.cache")

MANIFEST = "integrity.json"
FORMAT = 1
QUICK_HASH_LIMIT = 4 * 1024 * 1024
"""Key files up to this size are hashed on every use (a .ko: ~1 ms); bigger ones are sized."""

ABSENT = "absent"
"""check_entry's answer for an entry that is not there at all (nothing to report)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _rel(entry: Path, path: str | Path) -> str | None:
    """``path`` (relative to ``entry`` or absolute) as the manifest names it: the real file's
    path inside the entry, symlinks resolved; None if it lies outside the entry."""
    full = Path(path) if Path(path).is_absolute() else entry / path
    try:
        return full.resolve().relative_to(entry.resolve()).as_posix()
    except (ValueError, OSError):
        return None


def write_manifest(entry: Path, files: Iterable[str | Path] | None = None, *,
                   key: Iterable[str | Path] | None = None,
                   hashed: dict[str, str] | None = None) -> dict:
    """Record ``files`` (default: every file and symlink under ``entry``) in the entry's manifest.

    Call it last, once everything else is in place.  ``key`` names the files checked on every
    use (default: all of them); paths may go through symlinks and may be absolute, a key outside
    the entry or not recorded is ignored.  The manifest is written by rename, so an entry that
    is adopted in place is never seen with half a manifest.  ``hashed`` maps entry-relative
    paths to sha256 digests the writer computed while writing them (a snapshot's state is hashed
    as it streams in), so those files are not read a second time.
    """
    known = hashed or {}

    def digest(path: Path, rel: str) -> str:
        return known.get(rel) or _sha256(path)

    recorded: dict[str, list] = {}
    links: dict[str, str] = {}
    if files is None:
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = Path(dirpath, name)
                rel = path.relative_to(entry).as_posix()
                if rel == MANIFEST or rel.startswith(f".{MANIFEST}."):
                    continue
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    links[rel] = os.readlink(path)
                elif stat.S_ISREG(st.st_mode):
                    recorded[rel] = [st.st_size, digest(path, rel)]
    else:
        for item in files:
            path = Path(item) if Path(item).is_absolute() else entry / item
            rel = path.relative_to(entry).as_posix()
            if path.is_symlink():
                links[rel] = os.readlink(path)
            else:
                recorded[rel] = [path.stat().st_size, digest(path, rel)]
    if key is None:
        keys = sorted(recorded)
    else:
        keys = sorted({r for k in key if (r := _rel(entry, k)) is not None and r in recorded})
    data = {"format": FORMAT, "written": time.time(), "key": keys, "files": recorded,
            "links": links}
    tmp = entry / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    tmp.replace(entry / MANIFEST)
    return data


def has_manifest(entry: Path) -> bool:
    return (entry / MANIFEST).is_file()


def read_manifest(entry: Path) -> dict | str:
    """The manifest's data, or why there is none usable (a reason for :func:`verify`)."""
    try:
        data = json.loads((entry / MANIFEST).read_text())
    except FileNotFoundError:
        if not entry.is_dir():
            return "it is missing"
        return (f"it has no {MANIFEST} (it was never completed, or an older kmodlab wrote it)")
    except (OSError, ValueError) as exc:
        return f"its {MANIFEST} is unreadable ({exc.__class__.__name__})"
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(
            data.get("files"), dict):
        return f"its {MANIFEST} is not one this kmodlab can read"
    return data


def verify(entry: Path, deep: bool = False, *, every_file: bool = False) -> str | None:
    """None if ``entry`` matches its manifest, else one line saying what is wrong.

    Default: the key files' sizes, and hashes of the small ones.  ``every_file``: the size of
    every recorded file and the target of every symlink.  ``deep``: the hash of every file too.
    """
    data = read_manifest(entry)
    if isinstance(data, str):
        return data
    files: dict[str, list] = data["files"]
    key = set(data.get("key", ()))
    names = sorted(files) if (deep or every_file) else sorted(key)
    problems: list[str] = []
    for rel in names:
        size, digest = files.get(rel, (None, None))
        path = entry / rel
        try:
            st = path.lstat()
        except FileNotFoundError:
            problems.append(f"{rel} is missing")
            continue
        except OSError as exc:
            problems.append(f"{rel} cannot be read ({exc.strerror})")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{rel} is no longer a regular file")
        elif size is not None and st.st_size != size:
            problems.append(f"{rel} is {st.st_size} bytes, the manifest says {size}")
        elif digest and (deep or (rel in key and st.st_size <= QUICK_HASH_LIMIT)):
            try:
                if _sha256(path) != digest:
                    problems.append(f"{rel} does not match its recorded sha256")
            except OSError as exc:
                problems.append(f"{rel} cannot be read ({exc.strerror})")
    if deep or every_file:
        for rel, target in sorted(data.get("links", {}).items()):
            try:
                if os.readlink(entry / rel) != target:
                    problems.append(f"symlink {rel} no longer points to {target}")
            except OSError:
                problems.append(f"symlink {rel} is missing")
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return problems[0] + more


def check_entry(entry: Path, what: str, *, locked: bool = False, deep: bool = False,
                every_file: bool = False, then: str = "rebuilding it",
                adopt: Callable[[Path], bool] | None = None) -> str | None:
    """Is the cache entry ``entry`` usable?  None: yes.  :data:`ABSENT`: it is not there.

    Otherwise it was damaged (the reason is returned): it has been discarded, under its entry
    lock (taken here unless ``locked``: the caller holds it), and one warning logged, naming
    ``what`` and what happens ``then``.  An entry without a manifest is passed to ``adopt``
    first (under the lock): if that returns True (it verified the entry and wrote a manifest),
    the entry is usable.
    """
    if not entry.exists():
        return ABSENT
    reason = verify(entry, deep, every_file=every_file)
    if reason is None:
        return None
    if locked:
        return _discard_or_adopt(entry, what, then, adopt, deep, every_file)
    with entry_lock(entry):
        return _discard_or_adopt(entry, what, then, adopt, deep, every_file)


def _discard_or_adopt(entry: Path, what: str, then: str, adopt: Callable[[Path], bool] | None,
                      deep: bool, every_file: bool) -> str | None:
    # Under the lock: another process may have repaired, replaced or removed it meanwhile.
    if not entry.exists():
        return ABSENT
    reason = verify(entry, deep, every_file=every_file)
    if reason is None:
        return None
    if adopt is not None and not has_manifest(entry) and adopt(entry):
        return None
    log.warning("%s %s is damaged: %s; %s", what, entry, reason, then)
    remove_entry(entry)
    return reason


__all__ = ["ABSENT", "MANIFEST", "check_entry", "has_manifest", "read_manifest", "verify",
           "write_manifest"]
