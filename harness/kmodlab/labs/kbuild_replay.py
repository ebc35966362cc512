"""Build a submission without kbuild's top-level make: its sub-makes, replayed.

``make -C <headers> M=<dir> modules`` spends most of a one-file module's build in the top-level
make, not in compiling: on x86_64 6.1, 33 of the build's 35 compiler runs are the top and arch
Makefiles' ``cc-option``/``as-instr`` probes (scripts/Makefile.compiler), whose answers depend
only on the kernel and the compiler.  The top-level make then runs its sub-makes
(``scripts/Makefile.build obj=<dir>``, ``scripts/Makefile.modpost``, which runs
``Makefile.modfinal``) with everything it computed exported in their environment.

So, once per kernel and jail, kmodlab builds a probe module in the jail with ``MAKE`` set to a
recording wrapper (:data:`WRAPPER`): every sub-make leaves its directory, arguments and
environment, then runs.  The replay is the first level of sub-makes that run kbuild's
``scripts/Makefile.*`` (:func:`kbuild_submakes`: level 1 on 6.1; on 6.12 the top Makefile first
starts itself again in the output folder, so level 2).  Later builds run those directly: the same
jail, the same paths (a submission is always at :data:`~kmodlab.labs.jail.JAIL_SUBMISSION`), and
kbuild's own rules for everything else (compiler flags, objtool, modpost, BTF).  A recipe is used
only when replaying it on the probe gives the full build's .ko (:func:`same_module`: every byte
but .BTF's, which pahole's parallel encoding orders differently from one build to the next even
without replay); otherwise builds keep the full kbuild, and the cache entry says why.  The recipe comes from kmodlab's own probe, never from a submission; the
recorded environment is the jail's cleared one plus what the top-level make exported.

``KMODLAB_FULL_KBUILD=1`` turns replay off (every build runs the whole kbuild).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs.jail import JAIL_SUBMISSION, Jail, JailError, Mount, run_in_jail
from kmodlab.manifest import check_entry, write_manifest
from kmodlab.paths import atomic_dir, cache_dir, entry_lock

log = logging.getLogger(__name__)

FORMAT = 2
JAIL_DIR = "/kmodlab/kbuild"
"""Where a recipe's folder (the wrapper and the replay script) is mounted in the jail."""
WRAPPER = f"{JAIL_DIR}/make"
REPLAY = f"{JAIL_DIR}/replay.sh"
RECORDS = ".kmodlab-submakes"
"""Folder of the probe build where the wrapper leaves its records."""
CAPTURE_TIMEOUT = 300

WRAPPER_TEXT = """\
#!/bin/sh
# kmodlab (labs/kbuild_replay.py): note a sub-make of kbuild, then run it.
if [ -n "$KML_RECORD" ]; then
    n=0
    for f in "$KML_RECORD"/*.pwd; do [ -e "$f" ] && n=$((n + 1)); done
    pwd > "$KML_RECORD/$n.pwd"
    env -0 > "$KML_RECORD/$n.env"
    printf '%s\\0' "$@" > "$KML_RECORD/$n.argv"
fi
exec make "$@"
"""

PROBE_SOURCE = """\
// SPDX-License-Identifier: GPL-2.0
/* kmodlab's probe for recording kbuild's sub-makes (labs/kbuild_replay.py) */
#include <linux/module.h>
static int __init kml_replay_init(void) { return 0; }
static void __exit kml_replay_exit(void) { }
module_init(kml_replay_init);
module_exit(kml_replay_exit);
MODULE_LICENSE("GPL");
"""
PROBE_MODULE = "kml_replay_probe"

DROPPED_ENV = ("KML_RECORD", "_", "OLDPWD", "SHLVL")
"""Recorded variables the replay leaves out: the recorder's own, and the shell's bookkeeping."""


@dataclass(frozen=True)
class SubMake:
    """One sub-make, as the wrapper saw it start."""

    directory: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]

    @property
    def level(self) -> int:
        """MAKELEVEL in its environment: 1 for the top-level make's children."""
        value = dict(self.env).get("MAKELEVEL", "")
        return int(value) if value.isdigit() else 0

    @property
    def makefile(self) -> str:
        """Its ``-f`` makefile ('' for none)."""
        args = list(self.argv)
        for i, arg in enumerate(args):
            if arg == "-f" and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith("-f") and len(arg) > 2:
                return arg[2:]
        return ""


def kbuild_submakes(subs: list[SubMake]) -> list[SubMake]:
    """The sub-makes to replay: those running kbuild's ``scripts/Makefile.*`` at the lowest
    level any does (the deeper ones are theirs to start), in the order they started."""
    kbuild = [s for s in subs if "/scripts/Makefile." in s.makefile]
    if not kbuild:
        return []
    level = min(s.level for s in kbuild)
    return [s for s in kbuild if s.level == level]


def same_module(a: bytes, b: bytes) -> bool:
    """Two .ko files are the same module: the same sections, with the same bytes, .BTF's aside
    (see the module docstring)."""
    return _sections(a) == _sections(b)


def _sections(data: bytes) -> list[tuple[str, str, int, bytes | int]]:
    import io

    from elftools.elf.elffile import ELFFile  # pyelftools: every arch's ELF, pure Python

    out = []
    for sec in ELFFile(io.BytesIO(data)).iter_sections():
        body: bytes | int = sec["sh_size"] if sec["sh_type"] == "SHT_NOBITS" else sec.data()
        if sec.name == ".BTF":
            body = b"BTF" if body else b""
        out.append((sec.name, sec["sh_type"], sec["sh_flags"], body))
    return out


@dataclass(frozen=True)
class Recipe:
    """A kernel's replay: usable (its folder holds :data:`WRAPPER` and :data:`REPLAY`), or not,
    with the reason."""

    directory: Path
    usable: bool
    reason: str = ""

    @property
    def mount(self) -> Mount:
        return Mount(str(self.directory), JAIL_DIR, "ro")

    @property
    def command(self) -> list[str]:
        return ["/bin/sh", REPLAY]


def parse_records(folder: Path) -> list[SubMake]:
    """The wrapper's records, in the order the sub-makes started."""
    subs = []
    numbers = sorted(int(p.stem) for p in folder.glob("*.pwd") if p.stem.isdigit())
    for n in numbers:
        argv = (folder / f"{n}.argv").read_bytes().split(b"\0")
        env = (folder / f"{n}.env").read_bytes().split(b"\0")
        pairs = []
        for item in env:
            name, sep, value = item.decode("utf-8", "surrogateescape").partition("=")
            if sep and name not in DROPPED_ENV:
                pairs.append((name, value))
        subs.append(SubMake((folder / f"{n}.pwd").read_text().strip(),
                            tuple(a.decode("utf-8", "surrogateescape") for a in argv if a),
                            tuple(pairs)))
    return subs


def replay_script(subs: list[SubMake], label: str) -> str:
    """A shell script running ``subs`` one after the other, each in its directory with exactly
    its recorded environment; the first that fails ends it with its status."""
    if not subs:
        raise ValueError("no sub-make was recorded")
    lines = [f"# kbuild's sub-makes for {label}, recorded by kmodlab (labs/kbuild_replay.py)",
             "set -e"]
    for sub in subs:
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in sub.env)
        lines.append(f"cd {shlex.quote(sub.directory)}")
        lines.append(f"env -i {env} make {' '.join(map(shlex.quote, sub.argv))}")
    return "\n".join(lines) + "\n"


def enabled() -> bool:
    return os.environ.get("KMODLAB_FULL_KBUILD", "") not in ("1", "yes", "true")


def recipe_key(kernel: Kernel, jail: Jail, make_argv: list[str]) -> str:
    """What a recipe depends on: kmodlab's format, the kernel, the jail (its mounts: toolchain
    and headers) and the kbuild command line."""
    h = hashlib.sha256()
    for part in (str(FORMAT), kernel.release, kernel.arch, json.dumps(jail.argv(["true"])),
                 json.dumps(make_argv)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


LayOut = Callable[[Path, str, str], None]
"""lay_out(folder, module, source): a fresh build folder for one module from one C source, laid
out exactly as a submission's (kmodlab.labs.sandbox: the Kbuild and the assembler guard)."""


def kbuild_recipe(kernel: Kernel, jail: Jail, make_argv: list[str], lay_out: LayOut,
                  work_dir: Path, limits: list[str]) -> Recipe:
    """The kernel's recipe (captured and checked on first use, then read from the cache).

    ``jail`` is the submissions' jail for ``kernel`` (no build folder yet), ``make_argv`` the
    kbuild command line with the jail's paths; the probe is built in ``work_dir``, laid out by
    ``lay_out``; ``limits`` wraps each jailed run."""
    key = recipe_key(kernel, jail, make_argv)
    entry = cache_dir("kbuild-recipes") / f"{kernel.label}-{key[:16]}"
    # Checked against its manifest (sha256) at every build: a damaged recipe is recorded
    # again, never replayed.
    recipe = _load(entry)
    if recipe is not None:
        return recipe
    with entry_lock(entry):
        recipe = _load(entry, locked=True)
        if recipe is not None:
            return recipe
        with atomic_dir(entry) as tmp:
            usable, reason = _capture(tmp, kernel.label, jail, list(make_argv), lay_out,
                                      work_dir / "kbuild-replay-probe", list(limits))
            (tmp / "recipe.json").write_text(json.dumps(
                {"format": FORMAT, "kernel": kernel.label, "usable": usable, "reason": reason},
                indent=2))
            write_manifest(tmp)                                      # last
        if not usable:
            log.warning("kbuild replay is off for %s: %s", kernel.label, reason)
    recipe = _load(entry)
    assert recipe is not None
    return recipe


def _load(entry: Path, *, locked: bool = False) -> Recipe | None:
    # deep: every byte hashed (three small files), since the script is what runs
    if check_entry(entry, "kbuild recipe", then="it will be recorded again", locked=locked,
                   deep=True):
        return None
    data = json.loads((entry / "recipe.json").read_text())
    return Recipe(entry, bool(data.get("usable")), str(data.get("reason", "")))


def _capture(tmp: Path, label: str, jail: Jail, make_argv: list[str], lay_out: LayOut,
             probe_dir: Path, limits: list[str]) -> tuple[bool, str]:
    """Record the sub-makes of a full probe build, replay them on a fresh probe and compare the
    two .ko files.  (usable, why not)."""
    wrapper = tmp / "make"
    wrapper.write_text(WRAPPER_TEXT)
    wrapper.chmod(0o755)
    jail = jail.with_mounts(Mount(str(probe_dir.resolve()), JAIL_SUBMISSION, "rw"),
                            Mount(str(tmp.resolve()), JAIL_DIR, "ro"), chdir=JAIL_SUBMISSION)
    lay_out(probe_dir, PROBE_MODULE, PROBE_SOURCE)
    (probe_dir / RECORDS).mkdir()
    record = f"{JAIL_SUBMISSION}/{RECORDS}"
    full = " ".join(map(shlex.quote, [*make_argv, f"MAKE={WRAPPER}"]))
    log_path = probe_dir.parent / f"{probe_dir.name}-capture.log"
    try:
        run = run_in_jail(jail, ["/bin/sh", "-c", f"KML_RECORD={record} exec {full}"], log_path,
                          CAPTURE_TIMEOUT, limits, cwd=probe_dir)
        ko = probe_dir / f"{PROBE_MODULE}.ko"
        if run.returncode != 0 or not ko.is_file():
            return False, f"the probe's full kbuild failed (exit {run.returncode}): " \
                          + _tail(log_path)
        expected = ko.read_bytes()
        subs = kbuild_submakes(parse_records(probe_dir / RECORDS))
        if not subs:
            return False, "no sub-make ran kbuild's scripts/Makefile.* through $(MAKE)"
        (tmp / "replay.sh").write_text(replay_script(subs, label))
        lay_out(probe_dir, PROBE_MODULE, PROBE_SOURCE)
        run = run_in_jail(jail, ["/bin/sh", REPLAY], log_path, CAPTURE_TIMEOUT, limits,
                          cwd=probe_dir)
        if run.returncode != 0 or not ko.is_file():
            return False, f"the replay failed on the probe (exit {run.returncode}): " \
                          + _tail(log_path)
        if not same_module(ko.read_bytes(), expected):
            return False, "the replay's .ko differs from the full kbuild's"
        return True, ""
    except (JailError, OSError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        log_path.unlink(missing_ok=True)
        shutil.rmtree(probe_dir, ignore_errors=True)


def _tail(path: Path, n: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip()
    except OSError:
        return ""


__all__ = [
    "FORMAT",
    "JAIL_DIR",
    "REPLAY",
    "WRAPPER",
    "LayOut",
    "Recipe",
    "SubMake",
    "enabled",
    "kbuild_recipe",
    "kbuild_submakes",
    "parse_records",
    "recipe_key",
    "replay_script",
    "same_module",
]
