"""Build a user's Kbuild tree as its author builds it, without writing into it.

An author runs ``make`` in their folder: relative includes, ``$(PWD)``, symlinks to sibling
folders (``../common/x.c``) and sub-directories all resolve against where the folder *is*.
A copy elsewhere breaks each of them (links dangle, ``$(PWD)/../include`` points nowhere), and
building in the folder itself would leave objects in the user's tree (and pick up the objects
they built for another kernel).

So kmodlab builds **in place, through an overlay**: in a private mount namespace
(``unshare --mount``; ``--map-root-user`` when not root) the folder is covered by an overlayfs
whose lower layer is the folder itself and whose upper layer is the cache entry being written.
Make runs in the folder's own path (``$(PWD)`` is the folder), reads the real tree and its
siblings, and every file it writes lands in the cache entry.  Build products the user left in
the folder are deleted *inside the overlay* first (whiteouts in the upper layer), so a stale
``.o`` for another kernel is never linked.  When overlays are unavailable (no namespaces, a
folder path overlayfs cannot take) the folder is copied with links that leave it resolved to
their targets, and make runs with ``PWD`` set to the original folder: ``$(PWD)`` includes and
sibling links still resolve, only a Makefile that writes outside its folder could tell.

Kbuild records every file the compiler read (``deps_<obj> :=`` in ``.<obj>.cmd``):
:func:`recorded_inputs` keeps those outside the folder and outside the kernel's tree, so the
build cache can tell when a header next to the folder changed (:func:`changed_inputs`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

PRODUCTS = ("*.o", "*.ko", "*.mod", "*.mod.c", "*.mod.o", ".*.cmd", "*.order",
            "Module.symvers", ".tmp_versions", "*.dwo", "*.a")
"""What kbuild writes into a module folder; never part of the source, deleted in the overlay."""

_OVERLAY_SCRIPT = r"""
set -e
src=$1 upper=$2 work=$3; shift 3
mount -t overlay kmodlab-build -o "lowerdir=$src,upperdir=$upper,workdir=$work" "$src"
cd "$src"
find . \( -name .git -prune \) -o \( -type f \( {names} \) -print0 \) | xargs -0 -r rm -f
exec "$@"
"""


def _find_names() -> str:
    return " -o ".join(f"-name '{p}'" for p in PRODUCTS if "tmp_versions" not in p)


@functools.cache
def overlay_available() -> bool:
    """Can this process mount an overlay in a private mount namespace?  (Probed once.)"""
    with tempfile.TemporaryDirectory(prefix="kmodlab-ovl-probe-") as tmp:
        base = Path(tmp)
        for name in ("lower", "upper", "work"):
            (base / name).mkdir()
        (base / "lower" / "f").write_text("x")
        try:
            proc = subprocess.run(
                [*unshare_prefix(), "sh", "-c", _OVERLAY_SCRIPT.replace("{names}", _find_names()),
                 "sh", str(base / "lower"), str(base / "upper"), str(base / "work"),
                 "sh", "-c", "echo y > g && cat f"],
                capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return (proc.returncode == 0 and proc.stdout.strip() == "x"
                and (base / "upper" / "g").is_file() and not (base / "lower" / "g").exists())


def unshare_prefix() -> list[str]:
    """``unshare`` for a private mount namespace (a user namespace too when not root)."""
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv.insert(1, "--map-root-user")
    return argv


def overlay_usable(src: Path) -> bool:
    """overlayfs mount options cannot carry ``,`` or ``:`` (nor ``\\``) in a path."""
    return not re.search(r"[,:\\]", str(src)) and overlay_available()


def run_in_overlay(src: Path, upper: Path, argv: list[str], env: Mapping[str, str],
                   timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``src`` covered by an overlay whose writes land in ``upper``."""
    work = Path(tempfile.mkdtemp(prefix=".ovl-work-", dir=upper.parent))
    try:
        return subprocess.run(
            [*unshare_prefix(), "sh", "-c", _OVERLAY_SCRIPT.replace("{names}", _find_names()),
             "sh", str(src), str(upper), str(work), *argv],
            cwd="/", env=dict(env, PWD=str(src)), capture_output=True, text=True,
            timeout=timeout, check=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        drop_whiteouts(upper)


def drop_whiteouts(upper: Path) -> None:
    """Delete overlayfs whiteouts (0/0 character devices) left in an upper layer."""
    for dirpath, _dirs, files in os.walk(upper):
        for name in files:
            path = Path(dirpath, name)
            try:
                if stat.S_ISCHR(path.lstat().st_mode):
                    path.unlink()
            except OSError:
                pass


def copy_resolving_links(src: Path, dest: Path) -> None:
    """The fallback: copy ``src`` without build products; a link whose target lies outside
    ``src`` is replaced by a copy of its target (a dangling one is kept as it is, and make
    then reports the missing file by name)."""
    ignore = shutil.ignore_patterns(*PRODUCTS, ".git")
    root = src.resolve()

    def copy(path: str, target: str) -> None:
        p = Path(path)
        try:
            real = p.resolve(strict=True)
        except (OSError, RuntimeError):
            os.symlink(os.readlink(p), target) if p.is_symlink() else shutil.copy2(p, target)
            return
        if p.is_symlink() and real.is_relative_to(root):
            os.symlink(os.readlink(p), target)
        else:
            shutil.copy2(real, target)

    shutil.copytree(src, dest, symlinks=False, ignore=ignore, copy_function=copy,
                    dirs_exist_ok=True)


# --------------------------------------------------------------------------- what make read

_DEPS_RE = re.compile(r"^deps_\S+\s*:=\s*(.*?)$", re.MULTILINE)


def _dep_paths(cmd_text: str) -> Iterable[str]:
    """Paths listed in the ``deps_<obj> :=`` blocks of a ``.cmd`` file."""
    joined = cmd_text.replace("\\\n", " ")
    for m in _DEPS_RE.finditer(joined):
        for token in m.group(1).split():
            if token.startswith("$(") or token.endswith(")") or token == "\\":
                continue            # $(wildcard include/config/...) and the like
            yield token


def recorded_inputs(build_dir: Path, src: Path, excluded: Iterable[Path]) -> dict[str, str]:
    """Files outside ``src`` and outside every ``excluded`` tree (the kernel's headers, the
    compiler's own) that the compiler read, as ``{absolute path: sha256}``, from the ``.cmd``
    files kbuild wrote under ``build_dir``.  Relative paths are the kernel tree's."""
    skip = [Path(p).resolve() for p in excluded]
    root = src.resolve()
    found: dict[str, str] = {}
    for cmd in build_dir.rglob(".*.cmd"):
        try:
            text = cmd.read_text(errors="replace")
        except OSError:
            continue
        for token in _dep_paths(text):
            if not token.startswith("/"):
                continue
            path = Path(token).resolve()
            if path.is_relative_to(root) or any(path.is_relative_to(s) for s in skip):
                continue
            if str(path) not in found and path.is_file():
                found[str(path)] = file_digest(path)
    return dict(sorted(found.items()))


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_inputs(inputs: Mapping[str, str]) -> list[str]:
    """The recorded inputs that changed or vanished since the build (empty: still fresh)."""
    changed: list[str] = []
    for path, digest in inputs.items():
        try:
            if file_digest(Path(path)) != digest:
                changed.append(path)
        except OSError:
            changed.append(path)
    return changed


def tree_digest(root: Path) -> str:
    """The folder's identity: every source file's path and bytes (through links; a dangling
    link by its text), build products excluded."""
    h = hashlib.sha256()
    ignore = shutil.ignore_patterns(*PRODUCTS, ".git", "__pycache__")
    for dirpath, dirnames, filenames in os.walk(root):
        skipped = ignore(dirpath, dirnames + filenames)
        dirnames[:] = sorted(d for d in dirnames if d not in skipped)
        for name in sorted(f for f in filenames if f not in skipped):
            path = Path(dirpath, name)
            h.update(str(path.relative_to(root)).encode() + b"\0")
            try:
                h.update(path.read_bytes())
            except OSError:
                h.update(b"dangling link -> " + os.readlink(path).encode()
                         if path.is_symlink() else b"unreadable")
    return h.hexdigest()


__all__ = [
    "PRODUCTS", "changed_inputs", "copy_resolving_links", "drop_whiteouts", "file_digest",
    "overlay_available", "overlay_usable", "recorded_inputs", "run_in_overlay", "tree_digest",
    "unshare_prefix",
]
