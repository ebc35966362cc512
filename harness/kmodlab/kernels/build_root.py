"""Roots of other Debian releases, in which kbuild runs for kernels the host cannot build for.

A kernel's headers call the compiler it was built with (``gcc-16`` for 7.2, ``gcc-10`` for
5.10), and Debian links its kbuild programs against that release's C library (7.2's need glibc
2.38; bookworm has 2.36).  Neither may be installed on the host, so kmodlab makes a minimal root
of the release (``mmdebstrap --variant=essential`` plus the compiler, make and kbuild's
libraries, from series.yaml ``build_envs``) in its cache, and runs kbuild in it through the
build jail (:mod:`kmodlab.labs.jail`), which binds only the root's toolchain folders.

A root is a cache entry like any other: written in a temporary sibling and renamed into place
under a lock, sealed by :data:`MARKER` last, so a killed mmdebstrap or a damaged root (no marker,
or a listed tool missing) is rebuilt instead of trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import MissingToolError, ProvisionError
from kmodlab.kernels.kernel import Kernel
from kmodlab.paths import atomic_dir, cache_dir, file_lock, remove_entry
from kmodlab.registry.arch import arch_profile
from kmodlab.registry.series import BuildEnv, Series, SeriesTable, load_series

log = logging.getLogger(__name__)

MARKER = "kmodlab-build-root.json"
FORMAT = 1
MMDEBSTRAP_TIMEOUT = 1800


@dataclass(frozen=True)
class BuildRoot:
    """A sealed root: where it is, what it was made from, and the exact package versions."""

    path: Path
    env: str
    suite: str
    packages: tuple[str, ...]
    versions: dict[str, str]

    def has(self, tool: str) -> bool:
        """Is ``tool`` (a command name) in the root's /usr/bin?"""
        return (self.path / "usr" / "bin" / tool).exists() or \
            (self.path / "usr" / "bin" / tool).is_symlink()

    def version_text(self, package: str) -> str:
        """``gcc-16 16.1.0-3 (sid root)``: the build cache key's compiler part."""
        return f"{package} {self.versions.get(package, '?')} ({self.suite} root)"


def root_packages(series: Series, table: SeriesTable) -> tuple[str, ...]:
    """What the root of ``series`` holds: its build env's packages, and the cross packages of
    every arch of the series that kbuild cross-compiles for (a ``cross_compile`` prefix)."""
    env = _env(series, table)
    assert env is not None
    names = [p.format(compiler=series.compiler) for p in env.packages]
    for arch in series.arches or ():
        profile = arch_profile(arch)
        if profile.cross_compile:
            names += [p.format(compiler=series.compiler) for p in profile.cross_packages]
    return tuple(sorted(dict.fromkeys(names)))


def _env(series: Series, table: SeriesTable) -> BuildEnv | None:
    return table.get_build_env(series.build_env)


def needs_root(series_name: str) -> bool:
    """Does kbuild for this series run in a root of another release (not on the host)?"""
    table = load_series()
    if series_name not in table.series:
        return False        # custom kernels, kernels built from source: the host builds them
    return _env(table.series[series_name], table) is not None


def root_dir(series: Series, table: SeriesTable) -> Path:
    env = _env(series, table)
    assert env is not None
    packages = root_packages(series, table)
    digest = hashlib.sha256(json.dumps([FORMAT, env.suite, packages]).encode()).hexdigest()[:12]
    return cache_dir("build-roots") / f"{env.name}-{digest}"


def load_root(path: Path) -> BuildRoot | None:
    """The sealed root at ``path``, or None if it is missing, unsealed or damaged."""
    try:
        data = json.loads((path / MARKER).read_text())
        root = BuildRoot(path=path, env=data["env"], suite=data["suite"],
                         packages=tuple(data["packages"]), versions=dict(data["versions"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("format") != FORMAT:
        return None
    for tool in data.get("tools", []):
        if not root.has(tool):
            log.warning("build root %s lacks %s: rebuilding it", path.name, tool)
            return None
    return root


def build_root(series_name: str) -> BuildRoot | None:
    """The root kbuild of ``series_name`` runs in (made on first use), or None for the host."""
    table = load_series()
    if not needs_root(series_name):
        return None
    series = table.series[series_name]
    path = root_dir(series, table)
    root = load_root(path)
    if root is not None:
        return root
    with file_lock(path.with_name(path.name + ".lock")):
        root = load_root(path)
        if root is None:
            if path.exists():
                remove_entry(path)          # damaged: never trusted, rebuilt whole
            _make_root(series, table, path)
            root = load_root(path)
    if root is None:
        raise ProvisionError(f"the {series.build_env} build root in {path} is not usable after "
                             "it was made; delete it and try again")
    return root


def root_for(kernel: Kernel) -> BuildRoot | None:
    """The root ``kernel``'s modules build in; None when the host builds them (its series
    builds on the host, or kmodlab built the kernel itself with the host's compiler)."""
    if kernel.config_names:
        return None
    return build_root(kernel.series)


def mmdebstrap_argv(env: BuildEnv, packages: tuple[str, ...], table: SeriesTable,
                    dest: Path) -> list[str]:
    """The mmdebstrap command for a root (pure: tests check it never touches the host's apt)."""
    archive = table.archive
    argv = ["mmdebstrap", "--variant=essential", f"--include={','.join(packages)}",
            f"--keyring={archive.keyring}", "--aptopt=Acquire::Languages \"none\"",
            "--dpkgopt=path-exclude=/usr/share/{doc,man,locale,info}/*"]
    if env.suite in archive.ignore_valid_until:
        argv.append("--aptopt=Acquire::Check-Valid-Until \"false\"")
    argv += [env.suite, str(dest), archive.mirror(env.suite)]
    return argv


def _make_root(series: Series, table: SeriesTable, path: Path) -> None:
    env = _env(series, table)
    assert env is not None
    if not shutil.which("mmdebstrap"):
        raise MissingToolError("mmdebstrap", "mmdebstrap")
    packages = root_packages(series, table)
    log.info("making the %s build root for %s: %s", env.suite, series.name, " ".join(packages))
    with atomic_dir(path) as tmp:
        argv = mmdebstrap_argv(env, packages, table, tmp)    # an empty folder: mmdebstrap's
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                                  timeout=MMDEBSTRAP_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"mmdebstrap did not finish within {MMDEBSTRAP_TIMEOUT} s "
                                 f"making the {env.suite} build root") from None
        if proc.returncode != 0:
            said = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                             if line.startswith(("E:", "W:")))[-2000:]
            raise ProvisionError(f"mmdebstrap could not make the {env.suite} build root for "
                                 f"{series.name} (exit {proc.returncode}): "
                                 f"{said or proc.stderr[-2000:]}")
        versions = installed_versions(tmp / "var" / "lib" / "dpkg" / "status")
        tools = ["make", series.compiler]
        (tmp / MARKER).write_text(json.dumps({
            "format": FORMAT, "env": env.name, "suite": env.suite, "packages": list(packages),
            "versions": versions, "tools": tools}, indent=2))


def installed_versions(status: Path) -> dict[str, str]:
    """Package -> version of every installed package in a dpkg status file."""
    versions: dict[str, str] = {}
    try:
        text = status.read_text(errors="replace")
    except OSError:
        return versions
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines()
                      if ": " in line and not line.startswith(" "))
        if "Package" in fields and "Version" in fields and \
                "installed" in fields.get("Status", ""):
            versions[fields["Package"]] = fields["Version"]
    return versions
