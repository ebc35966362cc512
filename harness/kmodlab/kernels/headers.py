"""Make an extracted Debian kernel tree work from the cache instead of from ``/``.

Debian's packages assume they are installed: ``lib/modules/<release>/build`` points at
``/usr/src/linux-headers-<release>``, and the arch headers ``Makefile`` does
``include /usr/src/linux-headers-<abi>-common/Makefile``.  Extracted into the cache those absolute
paths would silently use (or miss) whatever the *host* has installed.  Everything is rewritten
*relative*, so a cache entry keeps working when it is built in a temporary directory and renamed
into place, or when the whole cache is moved.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import MissingToolError, ProvisionError

_ABS_INCLUDE = re.compile(r"^(?P<kw>\s*-?include\s+)(?P<path>/\S+)[ \t]*$", re.MULTILINE)

# Resolved at include time to the directory of the Makefile being read, so `make -C <dir>`,
# `make -f <dir>/Makefile` and a `build` symlink all work.
_HERE = "$(dir $(lastword $(MAKEFILE_LIST)))"


@dataclass(frozen=True)
class Fixup:
    path: Path
    old: str
    new: str


def relativize_symlinks(root: Path) -> list[Fixup]:
    """Point absolute symlinks that target something inside ``root`` at it, relatively.

    Links whose target is not in the tree are left alone (and returned as nothing): they are
    reported by :func:`check_headers_tree` if a build needs them.
    """
    fixes = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            link = Path(dirpath) / name
            if not link.is_symlink():
                continue
            target = os.readlink(link)
            if not target.startswith("/"):
                continue
            inside = root / target.lstrip("/")
            if not os.path.lexists(inside):
                continue
            new = os.path.relpath(inside, link.parent)
            link.unlink()
            link.symlink_to(new)
            fixes.append(Fixup(link, target, new))
    return fixes


# 7.2's arch headers Makefile starts with ``KBUILD_OUTPUT=/usr/src/linux-headers-<release>``.
_ABS_OUTPUT = re.compile(r"^(?P<kw>KBUILD_OUTPUT\s*:?=\s*)(?P<path>/\S+)[ \t]*$", re.MULTILINE)
# Evaluated where it stands (:=), so it is this Makefile's folder, not the last one read.
_HERE_DIR = "$(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))"


def rewrite_makefile_includes(makefile: Path, root: Path) -> list[Fixup]:
    """``include /usr/src/X/Makefile`` -> ``include $(dir …this Makefile…)../X/Makefile``, and
    ``KBUILD_OUTPUT=/usr/src/<this folder>`` -> this Makefile's folder, wherever it is."""
    text = makefile.read_text()
    fixes = []

    def output(m: re.Match[str]) -> str:
        inside = root / m["path"].lstrip("/")
        if not inside.exists() or inside.resolve() != makefile.parent.resolve():
            return m[0]
        fixes.append(Fixup(makefile, m["path"], _HERE_DIR))
        return f"KBUILD_OUTPUT := {_HERE_DIR}"

    text = _ABS_OUTPUT.sub(output, text)

    def repl(m: re.Match[str]) -> str:
        inside = root / m["path"].lstrip("/")
        if not inside.exists():
            return m[0]
        new = _HERE + os.path.relpath(inside, makefile.parent)
        fixes.append(Fixup(makefile, m["path"], new))
        return m["kw"] + new

    new_text = _ABS_INCLUDE.sub(repl, text)
    if fixes:
        makefile.write_text(new_text)
    return fixes


def fix_tree(root: Path) -> list[Fixup]:
    """All fixups for an extracted kernel: symlinks anywhere, then the headers' Makefiles."""
    fixes = relativize_symlinks(root)
    src = root / "usr" / "src"
    if src.is_dir():
        for makefile in sorted(src.glob("*/Makefile")):
            if makefile.is_file() and not makefile.is_symlink():
                fixes += rewrite_makefile_includes(makefile, root)
    return fixes


def check_headers_tree(headers_dir: Path) -> None:
    """Fail now, with the culprit named, rather than in the first module build."""
    needed = [
        headers_dir / "Makefile",
        headers_dir / ".config",
        headers_dir / "Module.symvers",
        headers_dir / "scripts" / "basic" / "fixdep",
        headers_dir / "scripts" / "mod" / "modpost",
    ]
    missing = [str(p.relative_to(headers_dir)) for p in needed if not p.exists()]
    text = (headers_dir / "Makefile").read_text() if (headers_dir / "Makefile").exists() else ""
    for m in _ABS_INCLUDE.finditer(text):
        missing.append(f"Makefile still includes absolute {m['path']}")
    for m in _ABS_OUTPUT.finditer(text):
        missing.append(f"Makefile still sets KBUILD_OUTPUT to the absolute {m['path']}")
    for m in re.finditer(r"^\s*-?include\s+\$\(dir \$\(lastword \$\(MAKEFILE_LIST\)\)\)(\S+)",
                         text, re.MULTILINE):
        if not (headers_dir / m[1]).exists():
            missing.append(f"Makefile includes {m[1]}, which is missing")
    if missing:
        raise ProvisionError(
            f"kernel headers in {headers_dir} are incomplete: {'; '.join(missing)}. "
            "Delete this cache entry and provision again."
        )


def run_depmod(root: Path, release: str) -> Path:
    """Write ``modules.dep`` & co: Debian's .debs ship none (the postinst makes them).

    No ``-F System.map``: Debian's System.map is a stub without symbols.
    """
    depmod = shutil.which("depmod") or next(
        (p for p in ("/usr/sbin/depmod", "/sbin/depmod") if os.access(p, os.X_OK)), None
    )
    if not depmod:
        raise MissingToolError("depmod", "kmod")
    modules = root / "lib" / "modules" / release
    if not modules.is_dir():
        raise ProvisionError(f"the kernel package has no lib/modules/{release} under {root}")
    proc = subprocess.run([depmod, "-b", str(root), release], capture_output=True, check=False,
                          text=True)
    if proc.returncode != 0 or not (modules / "modules.dep").is_file():
        raise ProvisionError(f"depmod -b {root} {release} failed: {proc.stderr.strip()}")
    return modules
