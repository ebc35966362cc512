"""Build rendered (or bring-your-own) modules with the target kernel's kbuild, with a cache.

A build directory holds the rendered source, the generated Kbuild, the .ko and ``build.log``,
so a failure can be read and re-run by hand.  Builds are cached under ``cache_dir("builds")``,
keyed by everything that changes the .ko: template sources, parameters, kernel release and
arch, and the compiler's version.  Each entry ends with its integrity manifest
(``kmodlab.manifest``, written last); a cache hit checks it (the .ko and build.json hashed, about
a millisecond) and reads build.json.  A damaged entry (a corrupted or missing .ko, no manifest)
is discarded with one warning and rebuilt.  Entries from before manifests have none: they are
rebuilt once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmodlab.errors import BuildError, ConfigError
from kmodlab.kernels.kernel import Kernel
from kmodlab.manifest import check_entry, has_manifest, verify, write_manifest
from kmodlab.modules import tree
from kmodlab.modules.params.base import FamilyParams
from kmodlab.modules.render import MODULES_DIR, RenderedModule, render, template_digest
from kmodlab.paths import atomic_dir, cache_dir, entry_lock

logger = logging.getLogger(__name__)

BUILD_RECIPE = "2"
"""Bump when this file changes what goes into a build directory: old cache entries then miss."""

MANIFEST = "build.json"
LOG = "build.log"
BUILD_TIMEOUT = 900

_DIAG_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<kind>fatal error|error|warning): (?P<msg>.*)$"
)
_NO_RULE_RE = re.compile(r"No rule to make target '(?P<object>[^']+\.o)'")
_MODPOST_RE = re.compile(r"^(WARNING|ERROR): modpost: .*$")


@dataclass(frozen=True)
class BuiltModule:
    """A .ko and where it came from.  ``load_args`` are insmod's ``k=v`` arguments."""

    ko_path: Path
    module_name: str
    family: str | None              # None for a bring-your-own module
    params: FamilyParams | dict[str, str]
    kernel_release: str
    build_dir: Path
    log: str = field(repr=False)
    warnings: tuple[str, ...] = ()
    cached: bool = False
    seconds: float = 0.0            # wall time of this build() call
    load_args: tuple[str, ...] = ()
    arch: str = ""                  # the kernel's arch (registry name), from build.json

    def source_lines(self, report: str) -> list[str]:
        """Frames of ``report`` in this module as ``func+0x../0x.. [mod] at file.c:42``."""
        from kmodlab.symbolize import source_lines

        if not self.arch:
            return []
        return source_lines(report, {self.module_name: self.ko_path}, self.arch)

    @property
    def source_path(self) -> Path:
        return self.build_dir / f"{self.module_name}.c"

    @property
    def log_path(self) -> Path:
        return self.build_dir / LOG


# --- kbuild -----------------------------------------------------------------------------------

def make_argv(kernel: Kernel, directory: Path) -> list[str]:
    """The make command line; kmodlab.kernels owns it (ARCH/CROSS_COMPILE from the arch profile)."""
    from kmodlab.kernels import kbuild_command

    return kbuild_command(kernel, directory)


def compiler_tool(kernel: Kernel) -> str:
    """The compiler kbuild will run for this kernel (e.g. ``aarch64-linux-gnu-gcc-12``)."""
    try:
        from kmodlab.kernels.build_env import required_tools

        return required_tools(kernel)[1].tool
    except (ImportError, IndexError, OSError):
        from kmodlab.registry.arch import arch_profile

        return arch_profile(kernel.arch).cross_compile + "gcc"


@functools.cache
def compiler_version(tool: str) -> str:
    """First line of ``<tool> --version``: part of the cache key, so a new compiler rebuilds."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30,
                             check=False)
    except OSError:
        return f"{tool} (not found)"
    return (out.stdout.splitlines() or [tool])[0]


def compiler_identity(kernel: Kernel) -> str:
    """The compiler and its exact version, for build cache keys: the host's ``--version`` line,
    or the package version in the Debian root the kernel's modules build in."""
    from kmodlab.kernels.build_root import root_for

    root = root_for(kernel)
    if root is not None:
        from kmodlab.registry.series import load_series

        return root.version_text(load_series().get_series(kernel.series).compiler)
    return compiler_version(compiler_tool(kernel))


def _check_tools(kernel: Kernel) -> None:
    try:
        from kmodlab.kernels import check_build_tools
    except ImportError:
        return
    check_build_tools(kernel)


def _kbuild_env(pwd: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, LC_ALL="C", LANG="C")     # C locale: diagnostics are parsed
    env.pop("MAKEFLAGS", None)  # a parent make's jobserver must not leak in
    if pwd is not None:
        env["PWD"] = str(pwd)
    return env


def run_kbuild(kernel: Kernel, directory: Path, *, pwd: Path | None = None) -> tuple[int, str]:
    """Run kbuild in ``directory``; returns (exit code, combined output).  ``pwd``: what the
    module's Makefile sees as ``$(PWD)`` (the user's folder when building a copy of it)."""
    from kmodlab.kernels.build_root import root_for

    argv = make_argv(kernel, directory)
    run, env = argv, _kbuild_env(pwd)
    if root_for(kernel) is not None:
        # The kernel's compiler lives in a root of its Debian release: kbuild runs in the jail
        # whose toolchain is that root's (kmodlab.labs.jail.root_build_argv).
        from kmodlab.labs.jail import root_build_argv

        run = root_build_argv(kernel, directory, argv, pwd)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    try:
        proc = subprocess.run(run, cwd=directory, env=env, capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"kbuild did not finish in {BUILD_TIMEOUT} s: {' '.join(argv)}") from exc
    return proc.returncode, "$ " + " ".join(argv) + "\n" + proc.stdout + proc.stderr


def run_kbuild_in_place(kernel: Kernel, src: Path, upper: Path) -> tuple[int, str]:
    """Run kbuild in the user's folder ``src`` itself, covered by an overlay whose writes land
    in ``upper`` (:mod:`kmodlab.modules.tree`): the author's own build semantics."""
    argv = make_argv(kernel, src)
    try:
        proc = tree.run_in_overlay(src, upper, argv, _kbuild_env(), BUILD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"kbuild did not finish in {BUILD_TIMEOUT} s: {' '.join(argv)}") from exc
    return proc.returncode, ("$ " + " ".join(argv) + f"  (in {src}, through an overlay)\n"
                             + proc.stdout + proc.stderr)


def find_warnings(log: str) -> tuple[str, ...]:
    """Compiler and modpost warnings in a build log (what the tests require to be empty)."""
    found = []
    for line in log.splitlines():
        m = _DIAG_RE.match(line)
        modpost = _MODPOST_RE.match(line.strip())
        if (m and m["kind"] == "warning") or (modpost and modpost[1] == "WARNING"):
            found.append(line.strip())
    return tuple(found)


# --- errors -----------------------------------------------------------------------------------

def _template_line(template: str, rendered_line: str) -> int | None:
    """Best effort: the template line that produced ``rendered_line``, if it occurs just once."""
    wanted = rendered_line.strip()
    if len(wanted) < 8:
        return None
    lines = (MODULES_DIR / template).read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if line.strip() == wanted]
    return hits[0] if len(hits) == 1 else None


def describe_failure(log: str, build_dir: Path, source: Path | None, template: str | None,
                     what: str) -> str:
    """A BuildError message: each compiler error located in the kept rendered source."""
    parts = [f"{what} failed to build."]
    errors = [m for m in map(_DIAG_RE.match, log.splitlines()) if m and m["kind"] != "warning"]
    src_lines = source.read_text().splitlines() if source and source.is_file() else []
    for m in errors[:10]:
        file = Path(m["file"])
        # A user's folder built in place names its own files; a rendered module's are kept.
        shown = file if file.is_absolute() and file.is_file() else build_dir / file.name
        parts.append(f"  {shown}:{m['line']}:{m['col'] or 0}: {m['kind']}: {m['msg']}")
        lineno = int(m["line"])
        if shown == file and source is None:
            own = shown.read_text(errors="replace").splitlines()
            if 0 < lineno <= len(own):
                parts.append(f"      {lineno} | {own[lineno - 1].strip()}")
        if source and file.name == source.name and 0 < lineno <= len(src_lines):
            code = src_lines[lineno - 1]
            parts.append(f"      {lineno} | {code.strip()}")
            if template:
                tline = _template_line(template, code)
                where = f" (line {tline})" if tline else ""
                parts.append(f"      rendered from template modules/{template}{where}")
    missing = [m for m in map(_NO_RULE_RE.search, log.splitlines()) if m]
    for m in missing[:5]:
        obj = Path(m["object"])
        parts.append(f"  kbuild found no source for {obj.name}: {obj.with_suffix('.c')} (or "
                     f"{obj.with_suffix('.S').name}) does not exist; check obj-m / <module>-y")
    if not errors and not missing:
        tail = "\n".join(log.strip().splitlines()[-25:])
        parts.append("kbuild output (last lines):\n" + tail)
    if source is not None:
        parts.append(f"rendered source kept at: {build_dir / source.name}")
    parts.append(f"full build log: {build_dir / LOG}")
    return "\n".join(parts)


def _keep_failed(tmp: Path, name: str) -> Path:
    """Copy a failed build directory out of the atomic temp dir so the user can inspect it."""
    dest = cache_dir("builds", "failed") / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(tmp, dest, symlinks=True)
    return dest


# --- the cache --------------------------------------------------------------------------------

def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _entry_name(stem: str, kernel: Kernel, key: str) -> str:
    major, minor = kernel.version
    return f"{stem}-{kernel.arch}-{major}.{minor}-{key[:16]}"


def _load_manifest(directory: Path, *, locked: bool = False) -> dict[str, Any] | None:
    """build.json of an intact cache entry; None if absent or damaged (then discarded, with one
    warning).  ``locked``: the caller holds the entry lock."""
    if check_entry(directory, "module build", locked=locked, then="rebuilding it") is not None:
        return None
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not (directory / data.get("ko", "")).is_file():
        return None
    return data


def _seal(tmp: Path, ko: str | Path) -> None:
    """Write the integrity manifest: last, once the .ko, build.json and log are in place."""
    write_manifest(tmp, key=[MANIFEST, ko, LOG])


def _explained(log: str, kernel: Kernel) -> str:
    """modpost's refusals (GPL-only or undefined symbols) explained, for a BuildError."""
    from kmodlab.refusals import ModuleFacts, explain

    found = explain([log], ModuleFacts.read(None, kernel.headers_dir))
    return "".join("\n" + e.describe() for e in found)


def _kernel_hint(kernel: Kernel) -> str:
    """When kbuild fails: is the kernel's own cache entry damaged?  (Every file's size: 50-100 ms
    for a Debian headers tree, only on this error path.)"""
    if not has_manifest(kernel.root):
        return ""
    reason = verify(kernel.root, every_file=True)
    if reason is None:
        return ""
    return (f"\nthe kernel's cache entry {kernel.root} is damaged ({reason}); repair it with: "
            f"kmodlab kernels fetch --arch {kernel.arch} --kernel {kernel.release}")


def _built(directory: Path, data: dict[str, Any], params: Any, cached: bool, t0: float,
           load_args: tuple[str, ...] = ()) -> BuiltModule:
    log_path = directory / LOG
    return BuiltModule(
        ko_path=directory / data["ko"],
        module_name=data["module_name"],
        family=data.get("family"),
        params=params,
        kernel_release=data["kernel_release"],
        build_dir=directory,
        log=log_path.read_text() if log_path.is_file() else "",
        warnings=tuple(data.get("warnings", ())),
        cached=cached,
        seconds=time.monotonic() - t0,
        load_args=load_args,
        arch=data.get("arch", ""),
    )


def _need_kernel(kernel: Kernel | None) -> Kernel:
    if kernel is None:
        raise ConfigError(
            "building a module needs a kernel: kernel = kmodlab.kernels.provision(arch, series)"
        )
    return kernel


def _entry_lock(name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise builds of one cache entry across processes (pytest-xdist, parallel CLIs)."""
    return entry_lock(cache_dir("builds") / name)


# --- public API -------------------------------------------------------------------------------

def build(family: str, params: FamilyParams | dict | None = None, kernel: Kernel | None = None,
          *, force: bool = False) -> BuiltModule:
    """Render ``family`` with ``params`` and build it for ``kernel`` (cached).

    Raises ConfigError for bad parameters (before anything is rendered) and BuildError with the
    compiler's message located in the rendered source if kbuild fails.
    """
    t0 = time.monotonic()
    kernel = _need_kernel(kernel)
    rendered = render(family, params, kernel)
    tool = compiler_tool(kernel)
    key = _digest(BUILD_RECIPE, template_digest(family), rendered.family,
                  rendered.params.model_dump_json(), kernel.release, kernel.arch,
                  compiler_identity(kernel))
    final = cache_dir("builds") / _entry_name(rendered.module_name, kernel, key)
    if not force and (data := _load_manifest(final)) is not None:
        return _built(final, data, rendered.params, True, t0)

    _check_tools(kernel)
    with _entry_lock(final.name):
        # Another process may have built it while we waited for the lock.
        if force or _load_manifest(final, locked=True) is None:
            with atomic_dir(final) as tmp:
                _compile(rendered, kernel, tmp, final, key, tool)
    data = _load_manifest(final)
    assert data is not None
    return _built(final, data, rendered.params, False, t0)


def _compile(rendered: RenderedModule, kernel: Kernel, tmp: Path, final: Path, key: str,
             tool: str) -> None:
    source = rendered.write(tmp)
    rc, log = run_kbuild(kernel, tmp)
    (tmp / LOG).write_text(log)
    ko = tmp / f"{rendered.module_name}.ko"
    what = f"module {rendered.module_name} (family {rendered.family}) for {kernel.release} ({kernel.arch})"
    if rc != 0 or not ko.is_file():
        kept = _keep_failed(tmp, final.name)
        raise BuildError(describe_failure(log.replace(str(tmp), str(kept)), kept,
                                          kept / source.name, rendered.template, what)
                         + _explained(log, kernel) + _kernel_hint(kernel))
    manifest = {
        "module_name": rendered.module_name,
        "family": rendered.family,
        "params": rendered.params.model_dump(),
        "kernel_release": kernel.release,
        "arch": kernel.arch,
        "compiler": compiler_identity(kernel),
        "key": key,
        "ko": ko.name,
        "warnings": list(find_warnings(log)),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    _seal(tmp, ko)


_PARAM_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def normalize_module_params(module_params: Mapping[str, Any] | Sequence[str] | None) -> dict[str, str]:
    """{k: v} or ["k=v", ...] -> {k: "v"}, refusing what insmod could not take."""
    if module_params is None:
        return {}
    items: list[tuple[str, str]] = []
    if isinstance(module_params, Mapping):
        items = [(str(k), str(v)) for k, v in module_params.items()]
    else:
        for item in module_params:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ConfigError(f"module parameter {item!r} is not of the form key=value")
            items.append((key, value))
    result: dict[str, str] = {}
    for key, value in items:
        if not _PARAM_KEY_RE.match(key):
            raise ConfigError(f"module parameter name {key!r} is not a C identifier")
        if any(c in value for c in "\n\r\0"):
            raise ConfigError(f"module parameter {key!r}: value contains a newline or NUL")
        result[key] = value
    return result


def build_source_dir(path: str | Path, kernel: Kernel | None,
                     module_params: Mapping[str, Any] | Sequence[str] | None = None,
                     *, module_name: str | None = None, force: bool = False) -> BuiltModule:
    """Build a bring-your-own out-of-tree module (a directory with its own Makefile/Kbuild).

    The tree is copied into the build cache first, so the user's directory gets no build
    products.  ``module_params`` are not compiled in: they travel as ``load_args`` (``k=v``
    strings for insmod).  ``module_name`` picks the .ko when the tree builds several.
    """
    t0 = time.monotonic()
    kernel = _need_kernel(kernel)
    src = Path(path).expanduser().resolve()
    if not src.is_dir():
        raise ConfigError(f"module source directory {src} does not exist")
    if not ((src / "Kbuild").is_file() or (src / "Makefile").is_file()):
        raise ConfigError(f"{src} has neither a Kbuild nor a Makefile; kbuild needs one (obj-m := <name>.o)")
    mparams = normalize_module_params(module_params)
    load_args = tuple(f"{k}={v}" for k, v in mparams.items())
    tool = compiler_tool(kernel)
    key = _digest(BUILD_RECIPE, "source-dir", str(src), tree.tree_digest(src), kernel.release,
                  kernel.arch, compiler_identity(kernel), module_name or "")
    final = cache_dir("builds") / _entry_name(re.sub(r"[^A-Za-z0-9_.-]", "_", src.name), kernel, key)
    if not force and (data := _fresh(final)) is not None:
        return _built(final, data, mparams, True, t0, load_args)

    _check_tools(kernel)
    with _entry_lock(final.name):
        if not force and (data := _fresh(final, locked=True)) is not None:
            return _built(final, data, mparams, True, t0, load_args)   # built while we waited
        _build_tree(src, kernel, final, key, tool, module_name)
    data = _load_manifest(final)
    assert data is not None
    return _built(final, data, mparams, False, t0, load_args)


def _fresh(final: Path, *, locked: bool = False) -> dict[str, Any] | None:
    """The entry's build.json when it is intact and no file the compiler read outside the
    folder changed since (kbuild's own record, :func:`kmodlab.modules.tree.recorded_inputs`)."""
    data = _load_manifest(final, locked=locked)
    if data is None:
        return None
    changed = tree.changed_inputs(data.get("inputs", {}))
    if changed:
        if locked:
            return None             # said once already, by the check before the lock
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        logger.warning("rebuilding %s: %s%s changed since it was built", final.name, changed[0],
                    more)
        return None
    return data


def _builds_in_root(kernel: Kernel) -> bool:
    """In-place (overlay) builds run the host's toolchain; a kernel whose toolchain is a Debian
    root builds a copy in the jail instead."""
    from kmodlab.kernels.build_root import root_for

    return root_for(kernel) is not None


def _compiler_dirs() -> list[Path]:
    """The compiler's own headers (stddef.h, stdarg.h): covered by its version in the key."""
    return [Path("/usr/lib/gcc"), Path("/usr/lib/gcc-cross"), Path("/usr/lib/llvm")]


def _build_tree(src: Path, kernel: Kernel, final: Path, key: str, tool: str,
                module_name: str | None) -> None:
    with atomic_dir(final) as tmp:
        if tree.overlay_usable(src) and not _builds_in_root(kernel):
            rc, log = run_kbuild_in_place(kernel, src, tmp)
            method = "overlay"
        else:
            tree.copy_resolving_links(src, tmp)
            rc, log = run_kbuild(kernel, tmp, pwd=src)
            method = "copy"
        (tmp / LOG).write_text(log)
        kos = sorted(p.relative_to(tmp) for p in tmp.rglob("*.ko"))
        what = f"out-of-tree module in {src} for {kernel.release} ({kernel.arch})"
        if rc != 0 or not kos:
            kept = _keep_failed(tmp, final.name)
            raise BuildError(describe_failure(log.replace(str(tmp), str(kept)), kept, None, None, what)
                             + _explained(log, kernel) + _kernel_hint(kernel))
        ko = _pick_ko(kos, module_name, src)
        manifest = {
            "module_name": ko.stem,
            "family": None,
            "source_dir": str(src),
            "kernel_release": kernel.release,
            "arch": kernel.arch,
            "compiler": compiler_identity(kernel),
            "key": key,
            "ko": str(ko),
            "kos": [str(k) for k in kos],
            "warnings": list(find_warnings(log)),
            "method": method,
            "inputs": tree.recorded_inputs(tmp, src, [tmp, kernel.root, kernel.headers_dir,
                                                      *_compiler_dirs()]),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _seal(tmp, ko)


def _pick_ko(kos: list[Path], module_name: str | None, src: Path) -> Path:
    if module_name is not None:
        for ko in kos:
            if ko.stem == module_name:
                return ko
        raise BuildError(f"{src} built {', '.join(k.stem for k in kos)} but no module '{module_name}'")
    if len(kos) > 1:
        raise ConfigError(
            f"{src} builds several modules ({', '.join(k.stem for k in kos)}); "
            "choose one with --module NAME (module_name= in Python)"
        )
    return kos[0]

