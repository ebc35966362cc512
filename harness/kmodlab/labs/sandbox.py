"""Compile untrusted submissions on the host without letting them read host files.

A student's code only *runs* inside the guest; on the host it is only compiled.  What a
compiler can be made to read is the danger: ``#include "/etc/passwd"`` makes gcc quote the
file in its error messages, ``asm(".incbin \\"/etc/shadow\\"")`` embeds it into the .ko (whose
module can then print it into the report), ``__has_include()`` tells whether a file exists,
and the assembler's macros (``.irp``, ``.macro``) assemble such directives out of pieces no
scanner sees.  So:

1. **The jail** (kmodlab.labs.jail) is the guarantee: make, gcc and binutils run in a bubblewrap
   sandbox holding only the toolchain and the kernel headers (read-only), the build folder
   (the only writable place besides a private /tmp), no network, no /proc, a cleared
   environment.  Host files are not there to be read, so every route fails the same way
   whether or not the file exists on the host.  Without a working bwrap nothing is built
   (:class:`~kmodlab.labs.jail.JailError`), never an unjailed fallback.
2. **Intake** copies only regular files the lab lists (``submit`` / ``allow_extra``), opened
   with O_NOFOLLOW and checked with fstat: symlinks, hard links (st_nlink > 1), devices,
   FIFOs, sub-folders and oversized files are refused or ignored.  The submission's own
   Makefile/Kbuild are never used: the grader writes the Kbuild.  What the build produced is
   read back the same way (:func:`collect_module`): a .ko that became a link is not followed.
3. **Scanning** (friendly early messages, not the defence): includes that are absolute,
   contain ``..`` or a backslash, are computed or are not ``.h``; ``#include_next``,
   ``#embed``, ``#pragma GCC dependency`` / ``system_header``, ``#line``, any mention of
   ``incbin`` or an assembler ``.include``.
4. **The assembler guard**: gcc runs with ``-B<guard dir>`` (mounted read-only in the jail),
   whose ``as`` refuses assembly containing ``.incbin`` / ``.include`` with a clear message.
5. **Redaction** of the compiler's output: only diagnostics about the submission's files and
   the kernel headers are kept (paths shown as ``submission/`` and ``<kernel headers>/``).
6. **Limits**: RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE (which also bounds the captured output,
   written to a file), RLIMIT_NOFILE for bwrap and everything in the jail, and a wall-clock
   timeout that kills it all.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.errors import BuildError
from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import kbuild_replay
from kmodlab.labs.errors import SubmissionRejected
from kmodlab.labs.jail import (
    JAIL_KERNEL,
    JAIL_SUBMISSION,
    JailError,
    Mount,
    kernel_source_tree,
    kernel_tree,
    require_jail,
    run_in_jail,
)
from kmodlab.labs.lab import Lab
from kmodlab.labs.limited import run_limited
from kmodlab.labs.params import render_template
from kmodlab.modules.build import BuiltModule, compiler_identity, compiler_tool, make_argv

__all__ = ["BuildOutcome", "Intake", "JailError", "build_submission", "collect_module",
           "jail_make_argv", "kbuild_text", "prune_build_cache", "redact_build_output",
           "run_limited", "scan_source", "scan_submission", "take_submission"]

MAX_FILES = 32
BUILD_RECIPE = "lab-2"          # lab-2: built in the jail (paths in the .ko changed)
GUARD_DIR = ".kmodlab-guard"
JAIL_GUARD = f"{JAIL_SUBMISSION}/{GUARD_DIR}"
MAX_KO_BYTES = 64 << 20
IGNORED_NAMES = ("Makefile", "Kbuild", "makefile", "GNUmakefile")
_IGNORE_SILENTLY = re.compile(r"^(?:\..*|.*\.(?:o|ko|mod|mod\.c|cmd|order|symvers|orig|rej|swp|"
                              r"yaml|md|txt|log)|__MACOSX|README.*|readme.*)$")
# Folders of a starter pack (a student checking from inside the pack): not worth a note.
_PACK_DIRS = ("provided", "templates", "solution", "tests", "__MACOSX")
OUTPUT_LINES = 200
OUTPUT_BYTES = 32 << 10


@dataclass
class Intake:
    """The files taken from a submission folder, and what was left out (and why)."""

    files: dict[str, bytes]
    notes: list[str] = field(default_factory=list)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()


def _safe_name(name: str) -> str:
    """A file name for messages: printable, short (student-controlled text)."""
    clean = "".join(c if c.isprintable() and c not in "\r\n\t" else "?" for c in name)
    return clean[:80] + ("..." if len(clean) > 80 else "")


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of a regular, singly-linked file, never following a symlink."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubmissionRejected(f"{_safe_name(path.name)} is a symbolic link; submit "
                                     "the file itself") from None
        raise SubmissionRejected(f"{_safe_name(path.name)} cannot be read "
                                 f"({os.strerror(exc.errno or 0)})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SubmissionRejected(f"{_safe_name(path.name)} is not a regular file")
        if st.st_nlink > 1:
            raise SubmissionRejected(f"{_safe_name(path.name)} is a hard link to another "
                                     "file; submit a plain copy")
        if st.st_size > limit:
            raise SubmissionRejected(f"{_safe_name(path.name)} is {st.st_size} bytes; the "
                                     f"limit is {limit}")
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise SubmissionRejected(f"{_safe_name(path.name)} is larger than {limit} bytes")
        return data
    finally:
        os.close(fd)


def take_submission(lab: Lab, folder: Path) -> Intake:
    """Copy the allowed files of ``folder`` into memory (see the module docstring, layer 1)."""
    spec = lab.spec
    if folder.is_symlink() or not folder.is_dir():
        raise SubmissionRejected(f"submission {_safe_name(folder.name)} is not a folder")
    files: dict[str, bytes] = {}
    notes: list[str] = []
    entries = sorted(os.scandir(folder), key=lambda e: e.name)
    if len(entries) > 500:
        raise SubmissionRejected(f"the submission holds {len(entries)} entries; hand in only "
                                 f"{', '.join(spec.submit)}")
    for entry in entries:
        name = entry.name
        shown = _safe_name(name)
        if name in spec.provided:
            notes.append(f"{shown}: ignored, the grader provides its own copy")
            continue
        if name in IGNORED_NAMES:
            notes.append(f"{shown}: ignored, the grader writes its own Kbuild")
            continue
        if entry.is_symlink():
            raise SubmissionRejected(f"{shown} is a symbolic link; submit the file itself")
        if entry.is_dir(follow_symlinks=False):
            if not name.startswith(".") and name not in _PACK_DIRS:
                notes.append(f"{shown}/: ignored (only files at the top level are used)")
            continue
        if not lab.spec.is_submittable(name):
            if not _IGNORE_SILENTLY.match(name):
                notes.append(f"{shown}: ignored (not a file this lab takes)")
            continue
        files[name] = read_regular_file(folder / name, spec.limits.file_bytes)
        if len(files) > MAX_FILES:
            raise SubmissionRejected(f"more than {MAX_FILES} source files")
    missing = [n for n in spec.submit if n not in files]
    if missing:
        raise SubmissionRejected(f"missing file(s): {', '.join(missing)} (the lab asks for "
                                 f"{', '.join(spec.submit)})")
    for name, data in files.items():
        if b"\0" in data:
            raise SubmissionRejected(f"{_safe_name(name)} contains NUL bytes; submit C source text")
    return Intake(files, notes)


# ------------------------------------------------------------------------------ scanning
_INCLUDE = re.compile(r"^\s*#\s*(?P<directive>include_next|include|import|embed)\b\s*(?P<rest>.*)$")
_DIRECTIVE = re.compile(r"^\s*#\s*(?P<name>[A-Za-z_]+)\b(?P<rest>.*)$")
_FORBIDDEN_WORDS = re.compile(r"incbin|\.include\b|__has_embed|_Pragma\s*\(\s*\"\s*GCC\s+"
                              r"(?:dependency|system_header)", re.IGNORECASE)


def _fold(text: str) -> str:
    """Line splicing (backslash-newline) and the ``%:`` digraph, as the preprocessor does."""
    text = text.replace("\r\n", "\n").replace("\\\n", "")
    return text.replace("%:", "#").replace("??=", "#")


def _strip_comments(text: str) -> str:
    """Comments replaced by a space (newlines kept), string and char literals kept verbatim."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and i + 1 < n and text[i + 1] == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(" " + "\n" * text.count("\n", i, end))
            i = end
        elif c == "/" and i + 1 < n and text[i + 1] == "/":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def scan_source(name: str, data: bytes) -> None:
    """Raise SubmissionRejected for anything that could make the compiler read a host file."""
    shown = _safe_name(name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    text = _strip_comments(_fold(text))
    for lineno, line in enumerate(text.split("\n"), start=1):
        where = f"{shown}:{lineno}"
        if _FORBIDDEN_WORDS.search(line):
            raise SubmissionRejected(f"{where}: assembler file directives (.incbin/.include) "
                                     "and GCC dependency pragmas are not allowed in submissions")
        m = _INCLUDE.match(line)
        if m:
            _check_include(where, m["directive"], m["rest"].strip())
            continue
        d = _DIRECTIVE.match(line)
        if d:
            directive = d["name"]
            rest = d["rest"]
            if directive == "line":
                raise SubmissionRejected(f"{where}: #line is not allowed in submissions")
            if directive == "pragma" and re.search(r"\b(dependency|system_header)\b", rest):
                raise SubmissionRejected(f"{where}: #pragma GCC {rest.split()[-1] if rest.split() else ''}"
                                         " is not allowed in submissions")


def _check_include(where: str, directive: str, rest: str) -> None:
    if directive != "include":
        raise SubmissionRejected(f"{where}: #{directive} is not allowed; use #include")
    m = re.match(r'^(?:"(?P<q>[^"\n]*)"|<(?P<a>[^>\n]*)>)\s*$', rest)
    if not m:
        raise SubmissionRejected(f"{where}: #include must name a header literally "
                                 '(#include <linux/slab.h> or #include "mine.h")')
    target = m["q"] if m["q"] is not None else m["a"]
    if not target or target.startswith(("/", "~")) or "\\" in target or ".." in target:
        raise SubmissionRejected(f"{where}: #include of an absolute path or one with '..' is "
                                 "not allowed; include kernel headers or your own files")
    # A quoted name not in the build falls back to the kernel's include paths: harmless.
    if not target.endswith(".h"):
        raise SubmissionRejected(f"{where}: #include {_safe_name(target)}: only .h files can "
                                 "be included")


def scan_submission(intake: Intake) -> None:
    for name, data in sorted(intake.files.items()):
        scan_source(name, data)


# ------------------------------------------------------------------------------ the guard
AS_GUARD = r"""#!/bin/sh
# kmodlab assembler guard: refuse directives that read files, then run the real assembler.
REAL='@REAL@'
input=""
for a in "$@"; do
  case "$a" in
    -*) ;;
    *) if [ -f "$a" ]; then input="$a"; fi ;;
  esac
done
check() {
  if grep -qiE '\.(incbin|include)([[:space:]]|")' "$1"; then
    echo "kmodlab: assembler directive .incbin/.include is not allowed in submissions" >&2
    exit 1
  fi
}
if [ -n "$input" ]; then
  check "$input"
  exec "$REAL" "$@"
fi
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
check "$tmp"
"$REAL" "$@" < "$tmp"
"""


def real_assembler(kernel: Kernel) -> str:
    """The assembler the compiler runs, as a path inside the jail (the host's, or the one in
    the Debian root the kernel's modules build in)."""
    from kmodlab.kernels.build_root import root_for
    from kmodlab.registry.arch import arch_profile

    root = root_for(kernel)
    if root is None:
        return _real_assembler(compiler_tool(kernel), kernel.arch)
    name = arch_profile(kernel.arch).cross_compile + "as"
    for folder in ("/usr/bin", "/bin"):
        host = root.path / folder.lstrip("/") / name
        if host.exists():
            return "/" + os.path.relpath(os.path.realpath(host), root.path)
    raise BuildError(f"no {name} in the {root.suite} build root {root.path}")


@functools.lru_cache(maxsize=16)
def _real_assembler(tool: str, arch: str) -> str:
    try:
        out = subprocess.run([tool, "-print-prog-name=as"], capture_output=True, text=True,
                             timeout=30, check=False).stdout.strip()
    except OSError:
        out = ""
    if out and os.path.isabs(out):
        return os.path.realpath(out)
    from kmodlab.registry.arch import arch_profile

    found = shutil.which(out or arch_profile(arch).cross_compile + "as") or shutil.which("as")
    if not found:
        raise BuildError(f"no assembler found for {arch}")
    return found


def write_guard(directory: Path, kernel: Kernel) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "as"
    script.write_text(AS_GUARD.replace("@REAL@", real_assembler(kernel).replace("'", "")))
    script.chmod(0o755)
    return directory


# ------------------------------------------------------------------------------ building
def kbuild_text(lab: Lab, guard: Path | str) -> str:
    """The Kbuild of a lab build; ``guard`` is the guard folder as the build sees it."""
    spec = lab.spec
    return module_kbuild(spec.module, [f for f in spec.submit if f.endswith(".c")], guard)


def module_kbuild(module: str, c_files: list[str], guard: Path | str) -> str:
    """The Kbuild kmodlab writes for ``module`` made of ``c_files``."""
    lines = ["# Generated by kmodlab for a lab submission; the submission's own Makefile/Kbuild",
             "# is never used.", f"obj-m := {module}.o"]
    if c_files != [f"{module}.c"]:
        objs = " ".join(f[:-2] + ".o" for f in c_files)
        lines.append(f"{module}-y := {objs}")
    lines.append(f"ccflags-y := -I$(src) -fmax-errors=25 -B{guard}/")
    return "\n".join(lines) + "\n"


def lay_out_module(directory: Path, module: str, source: str, *, kernel: Kernel) -> None:
    """A fresh build folder for one C file, as :func:`prepare_build_dir` lays out a lab's
    (kmodlab.labs.kbuild_replay records kbuild on such a folder)."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / f"{module}.c").write_text(source)
    write_guard(directory / GUARD_DIR, kernel)
    (directory / "Kbuild").write_text(module_kbuild(module, [f"{module}.c"], JAIL_GUARD))


def _limits_argv(lab: Lab, timeout: float) -> list[str]:
    return [sys.executable, "-m", "kmodlab.labs.limited",
            f"--as={lab.spec.limits.build_memory_mb << 20}",
            f"--cpu={int(timeout) + 5}", f"--fsize={64 << 20}", "--nofile=512", "--"]


def read_bounded(path: Path, limit: int = 256 << 10) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return ""
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... output truncated]" if len(data) > limit else "")


# gcc's diagnostics, and gas's (``waste.c:9: Error: ...``, after ``waste.c: Assembler messages:``)
_DIAG = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?: "
                   r"(?P<kind>fatal error|error|warning|note|Error|Warning): (?P<msg>.*)$")
_QUOTE = re.compile(r"^\s*(?:\d+\s*)?\|")
_INCLUDED = re.compile(r"^(?:In file included from|\s+from) (?P<file>[^:]+):(?P<line>\d+)[:,]?\s*$")
_IN_FUNCTION = re.compile(r"^(?P<file>[^\s:][^:]*): (?:In function|At top level|In member|"
                          r"Assembler messages:).*$")
_MAKE = re.compile(r"^make(?:\[\d+\])?: \*\*\* .*$")
_MODPOST = re.compile(r"^(?:ERROR|WARNING): modpost: .*$")
_GUARD = re.compile(r"^kmodlab: .*$")
# Debian's headers come in two trees (arch and -common); both are public kernel source.
_HEADERS_PATH = re.compile(r"(?:[^\s:\[\]'\"]*/)?usr/src/linux-headers-[^/\s:\]]+|"
                           r"(?:\.\./)+linux-headers-[^/\s:\]]+")
_LIMIT_HIT = re.compile(r"Killed|File size limit exceeded|CPU time limit exceeded|"
                        r"out of memory|virtual memory exhausted|Error 13[78]|Error 15[23]")


def redact_build_output(raw: str, build_dir: Path, kernel: Kernel,
                        max_lines: int = OUTPUT_LINES, note_dropped: bool = True) -> str:
    """Keep only what concerns the submission (see the module docstring, layer 4)."""
    replacements = [(JAIL_SUBMISSION, "submission"),
                    (str(build_dir.resolve()), "submission"), (str(build_dir), "submission"),
                    (str(kernel.headers_dir.resolve()), "<kernel headers>"),
                    (str(kernel.headers_dir), "<kernel headers>")]
    source = kernel_source_tree(kernel)
    if source is not None:     # a kernel kmodlab built: its headers are in its source tree
        replacements.insert(0, (source, "<kernel headers>"))

    def redact(line: str) -> str:
        for old, new in replacements:
            line = line.replace(old, new)
        line = _HEADERS_PATH.sub("<kernel headers>", line)
        line = line.replace(JAIL_KERNEL, "<kernel>")
        return line.replace(str(kernel.root), "<kernel>").replace(str(Path.home()), "~")

    def allowed_file(path: str) -> bool:
        p = redact(path)
        if p.startswith(("submission/", "<kernel headers>/")):
            return True
        return "/" not in p and not p.startswith("<")   # relative to the build dir

    kept: list[str] = []
    dropped = 0
    quoting = False
    for line in raw.splitlines():
        m = _DIAG.match(line)
        if m:
            quoting = allowed_file(m["file"])
            if quoting:
                kept.append(redact(line))
            else:
                dropped += 1
            continue
        if _QUOTE.match(line) or (line.startswith(" ") and line.strip().startswith("^")):
            if quoting:
                kept.append(redact(line))
            else:
                dropped += 1
            continue
        quoting = False
        inc = _INCLUDED.match(line) or _IN_FUNCTION.match(line)
        if inc and allowed_file(inc["file"]) or _MAKE.match(line) or _MODPOST.match(line) or _GUARD.match(line):
            kept.append(redact(line))
        elif line.strip():
            dropped += 1
    if len(kept) > max_lines:
        dropped += len(kept) - max_lines
        kept = kept[:max_lines]
    text = "\n".join(kept)
    if len(text) > OUTPUT_BYTES:
        text = text[:OUTPUT_BYTES] + "\n[... truncated]"
    if dropped and note_dropped:
        text += f"\n[{dropped} line(s) of build output not about your files omitted]"
    return text.strip()


@dataclass
class BuildOutcome:
    built: BuiltModule | None
    output: str                  # redacted compiler output (safe to show)
    seconds: float
    cached: bool = False
    rejected: bool = False
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.built is not None


def prepare_build_dir(lab: Lab, intake: Intake, kernel: Kernel, env: dict[str, object],
                      build_dir: Path) -> None:
    """Fresh directory: submitted files, provided headers, rendered templates, our Kbuild
    (whose paths are the jail's: the folder is ``/kmodlab/submission`` in the build)."""
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    for name, data in intake.files.items():
        (build_dir / name).write_bytes(data)
    for name in lab.spec.provided:
        shutil.copyfile(lab.provided_file(name), build_dir / name)
    for t in lab.spec.templates:
        text = lab.template_file(t.source).read_text()
        (build_dir / t.dest).write_text(render_template(text, env))
    write_guard(build_dir / GUARD_DIR, kernel)
    (build_dir / "Kbuild").write_text(kbuild_text(lab, JAIL_GUARD))


def build_key(lab: Lab, intake: Intake, kernel: Kernel, rendered: dict[str, str]) -> str:
    h = hashlib.sha256()
    for part in (BUILD_RECIPE, lab.digest, intake.digest, kernel.release, kernel.arch,
                 compiler_identity(kernel), json.dumps(rendered, sort_keys=True)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def build_submission(lab: Lab, intake: Intake, kernel: Kernel, env: dict[str, object],
                     work_dir: Path, cache: Path | None = None) -> BuildOutcome:
    """Scan, then compile ``intake`` for ``kernel`` in ``work_dir`` (limited, redacted).

    With ``cache``, results (including compile failures) are reused for identical inputs."""
    t0 = time.monotonic()
    try:
        scan_submission(intake)
    except SubmissionRejected as exc:
        return BuildOutcome(None, f"submission rejected: {exc}", time.monotonic() - t0,
                            rejected=True)
    rendered = {t.dest: render_template(lab.template_file(t.source).read_text(), env)
                for t in lab.spec.templates}
    key = build_key(lab, intake, kernel, rendered)
    if cache is not None:
        hit = _cache_lookup(cache, key, lab, kernel)
        if hit is not None:
            hit.seconds = time.monotonic() - t0
            return hit
    build_dir = work_dir / f"build-{kernel.label}"
    jail = require_jail(kernel, real_assembler(kernel))     # JailError: nothing is built
    prepare_build_dir(lab, intake, kernel, env, build_dir)
    limits = _limits_argv(lab, lab.spec.timeouts.build)
    make = jail_make_argv(kernel, build_dir)
    recipe = (kbuild_replay.kbuild_recipe(
        kernel, jail, make, functools.partial(lay_out_module, kernel=kernel), work_dir, limits)
        if kbuild_replay.enabled() else None)
    jail = jail.with_mounts(Mount(str(build_dir.resolve()), JAIL_SUBMISSION, "rw"),
                            Mount(str((build_dir / GUARD_DIR).resolve()), JAIL_GUARD, "ro"),
                            chdir=JAIL_SUBMISSION)
    log_path = work_dir / f"build-{kernel.label}.log"
    run = None
    if recipe is not None and recipe.usable:
        run = run_in_jail(jail.with_mounts(recipe.mount), recipe.command, log_path,
                          lab.spec.timeouts.build, limits, cwd=build_dir)
        if run.returncode not in (0, None):
            # Only the whole kbuild may fail a student: the same build again, from scratch
            # (a build that ran out of time stays out of time: not twice the timeout).
            prepare_build_dir(lab, intake, kernel, env, build_dir)
            run = None
    if run is None:
        run = run_in_jail(jail, make, log_path, lab.spec.timeouts.build, limits, cwd=build_dir)
    rc = run.returncode
    raw = read_bounded(log_path)
    ko = None
    if rc == 0:
        ko = collect_module(build_dir, f"{lab.spec.module}.ko", work_dir / f"module-{kernel.label}")
    if rc is None:
        outcome = BuildOutcome(None, f"the build did not finish within "
                               f"{lab.spec.timeouts.build:.0f} s and was stopped",
                               time.monotonic() - t0, timed_out=True)
    elif rc != 0 or ko is None:
        text = redact_build_output(raw, build_dir, kernel)
        if _LIMIT_HIT.search(raw) or rc >= 128:
            text += "\n[the compiler was stopped by a resource limit (memory, CPU or output)]"
        elif rc == 0:
            text += "\n[the build did not produce a regular .ko file]"
        outcome = BuildOutcome(None, text.strip() or f"kbuild failed (exit {rc})",
                               time.monotonic() - t0)
    else:
        built = BuiltModule(ko_path=ko, module_name=lab.spec.module, family=None, params={},
                            kernel_release=kernel.release, build_dir=build_dir, log="",
                            warnings=(), cached=False, seconds=time.monotonic() - t0,
                            arch=kernel.arch)
        warnings = redact_build_output(raw, build_dir, kernel, note_dropped=False)
        outcome = BuildOutcome(built, warnings, time.monotonic() - t0)
    if cache is not None:
        _cache_store(cache, key, outcome)
    return outcome


def jail_make_argv(kernel: Kernel, build_dir: Path) -> list[str]:
    """kbuild's command line (kmodlab.modules.build.make_argv) with the jail's paths."""
    headers = kernel_tree(kernel).headers
    host_headers = {str(kernel.headers_dir), str(kernel.headers_dir.resolve())}
    argv = []
    for arg in make_argv(kernel, build_dir):
        if arg in host_headers:
            arg = headers
        elif arg.startswith("M="):
            arg = f"M={JAIL_SUBMISSION}"
        argv.append(arg)
    if headers not in argv or f"M={JAIL_SUBMISSION}" not in argv:
        raise BuildError(f"cannot map the kbuild command into the jail: {' '.join(argv)}")
    return argv


def collect_module(build_dir: Path, name: str, dest_dir: Path) -> Path | None:
    """Copy ``build_dir/name`` (written by the jailed build) to ``dest_dir/name`` if it is a
    regular, singly-linked file of sane size; never follows a link the build may have made."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(build_dir / name, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > MAX_KO_BYTES:
            return None
        data = b""
        while len(data) <= MAX_KO_BYTES:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_KO_BYTES:
            return None
    finally:
        os.close(fd)
    if dest_dir.exists():
        shutil.rmtree(dest_dir)
    dest_dir.mkdir(parents=True)
    dest = dest_dir / name
    dest.write_bytes(data)
    return dest


BUILD_CACHE_KEEP = 4000


def prune_build_cache(cache: Path, keep: int = BUILD_CACHE_KEEP) -> int:
    """Drop all but the ``keep`` most recently used build-cache entries; returns how many."""
    try:
        entries = [e for e in cache.iterdir() if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return 0
    if len(entries) <= keep:
        return 0
    entries.sort(key=lambda e: e.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return len(entries) - keep


def _cache_lookup(cache: Path, key: str, lab: Lab, kernel: Kernel) -> BuildOutcome | None:
    entry = cache / key[:32]
    try:
        meta = json.loads((entry / "result.json").read_text())
        os.utime(entry)                     # most recently used: kept by prune_build_cache()
    except (OSError, ValueError):
        return None
    built = None
    if meta.get("ok"):
        ko = entry / f"{lab.spec.module}.ko"
        if not ko.is_file():
            return None
        built = BuiltModule(ko_path=ko, module_name=lab.spec.module, family=None, params={},
                            kernel_release=kernel.release, build_dir=entry, log="", cached=True,
                            arch=kernel.arch)
    return BuildOutcome(built, meta.get("output", ""), 0.0, cached=True,
                        timed_out=bool(meta.get("timed_out")))


def _cache_store(cache: Path, key: str, outcome: BuildOutcome) -> None:
    if outcome.timed_out:
        return      # a busy host can time a build out: try again next time
    entry = cache / key[:32]
    # per process and thread: the prebuilder (kmodlab.labs.prebuild) may store the same key
    tmp = cache / f".{key[:32]}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if outcome.built is not None:
        shutil.copyfile(outcome.built.ko_path, tmp / outcome.built.ko_path.name)
    (tmp / "result.json").write_text(json.dumps({"ok": outcome.ok, "output": outcome.output}))
    shutil.rmtree(entry, ignore_errors=True)
    try:
        os.rename(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)

