"""Kernels built from Debian's source with config fragments (``kmodlab kernels build``).

Debian's stock kernels have no KASAN, kmemleak or atomic-sleep checks, so the bugs students
write stay silent there.  This builds the same source Debian builds (``linux-source-<series>``,
kmodlab.kernels.source) with a small config: allnoconfig, then ``kconfig/build-base.config``,
the arch's ``build-<arch>.config``, kmodlab's requirements (``required.config``, ``<arch>.config``)
and the requested fragments (kmodlab.kernels.fragments), later files winning.  Everything is
built in (no modules of its own), so a cold build is minutes, not hours, on 2 cores.

After the config step every requested option is checked in the resulting ``.config``: Kconfig
silently drops an option whose dependencies fail, and a "debug-memory" kernel without KASAN
would be a false promise.  Each missing option is named with the file and line that asked.

The result is an ordinary :class:`~kmodlab.kernels.kernel.Kernel` in the kernel cache: the build
tree is its kbuild tree for modules, ``System.map`` is real, ``.config`` is what the model reads.
The entry is keyed by (source version, arch, every config input's text, compiler), so unchanged
inputs never rebuild; it is built in place under the entry lock (kbuild writes absolute paths
into the tree, so it cannot be renamed afterwards) and sealed with its manifest last: an
interrupted build is resumed by kbuild's own incremental build, never trusted half done.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import ConfigError, KernelConfigError, ProvisionError
from kmodlab.kernels.apt import Progress, require_tool
from kmodlab.kernels.fragments import Composition, compose
from kmodlab.kernels.kconfig_check import (
    KCONFIG_DIR,
    Requirement,
    load_requirements,
    parse_requirements,
)
from kmodlab.kernels.kernel import MANIFEST, Kernel, parse_kconfig
from kmodlab.kernels.progress import progress_reporter
from kmodlab.kernels.source import KernelSource, provision_source
from kmodlab.manifest import MANIFEST as INTEGRITY
from kmodlab.paths import cache_dir, entry_lock
from kmodlab.registry.arch import ArchProfile, arch_profile
from kmodlab.registry.series import load_series

FORMAT = 1
"""Bump when the build recipe changes in a way that must not reuse older entries."""

FLAVOUR = "source"
"""The flavour of every kernel built here (Debian's flavours are its own builds)."""

BUILD_DIR = "build"
LOG = "build.log"
STATS = "build.json"
BASE_FILE = "build-base.config"

_COMPILED = re.compile(r"^\s+(CC|AS)\s")
_ERROR = re.compile(r"(error:|Error \d+|\*\*\*)")


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides a built kernel, before anything is built."""

    profile: ArchProfile
    series: str
    composition: Composition
    source: KernelSource
    compiler: str               # the compiler command kbuild runs, e.g. "gcc-12"
    compiler_version: str       # its first --version line
    allconfig: str              # the KCONFIG_ALLCONFIG text
    requested: tuple[Requirement, ...]
    key: str

    @property
    def release(self) -> str:
        """``6.1.192-kmodlab-debug-memory``: what ``uname -r`` prints in the guest."""
        return f"{self.source.kernel_version}-kmodlab-{self.composition.label}"

    @property
    def entry(self) -> Path:
        return cache_dir("kernels") / (f"built-{self.profile.name}-{self.release}-{self.key}")


def _requirement_files(profile: ArchProfile, directory: Path) -> list[Path]:
    files = [directory / BASE_FILE]
    if profile.build_kconfig:
        files.append(directory / profile.build_kconfig)
    return files


def requested_options(profile: ArchProfile, composition: Composition,
                      directory: Path = KCONFIG_DIR) -> list[Requirement]:
    """Base, arch base, kmodlab's requirements, then the fragments: a later line wins."""
    chosen: dict[str, Requirement] = {}
    for path in _requirement_files(profile, directory):
        if not path.is_file():
            raise ConfigError(f"kernel build base {path} is missing")
        for req in parse_requirements(path.read_text(), str(path)):
            chosen[req.option] = req
    for req in load_requirements(profile.name, directory):
        if req.option in chosen and chosen[req.option].allowed[0] in req.allowed:
            continue                 # the base's choice (y for "y|m") already satisfies it
        chosen[req.option] = req
    for req in composition.options:
        chosen[req.option] = req
    return list(chosen.values())


def allconfig_text(requested: list[Requirement], release_suffix: str) -> str:
    """The KCONFIG_ALLCONFIG file: one line per option (the first allowed value)."""
    lines = [f'CONFIG_LOCALVERSION="{release_suffix}"', "# CONFIG_LOCALVERSION_AUTO is not set"]
    for req in requested:
        value = req.allowed[0]
        lines.append(f"# {req.option} is not set" if value == "n" else f"{req.option}={value}")
    return "\n".join(lines) + "\n"


def missing_options(config: dict[str, str], requested: list[Requirement] | tuple) -> list[str]:
    """Each requested option the built .config lacks, with where it was asked for."""
    return [f"{req.describe(config.get(req.option))}, asked at {req.where}"
            for req in requested if not req.accepts(config.get(req.option))]


def _compiler(profile: ArchProfile, series: str) -> tuple[str, str]:
    entry = load_series().series.get(series)
    if entry is None:
        raise ConfigError(f"unknown kernel series {series!r}")
    if entry.build_env != "host":
        raise ConfigError(f"kernel {series} builds need a Debian {entry.build_env} root "
                          f"(compiler {entry.compiler}); kmodlab builds only on the host so far")
    command = f"{profile.cross_compile}{entry.compiler}"
    found = shutil.which(command)
    if found is None:
        package = profile.cross_compiler_package or entry.compiler
        raise ConfigError(f"{command} is missing: install {package} to build {series} kernels "
                          f"for {profile.name}")
    version = subprocess.run([found, "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[:1]
    return command, (version[0] if version else command)


def plan_build(arch: str, series: str, names: str | tuple[str, ...],
               source: KernelSource | None = None, progress: Progress | None = None,
               directory: Path = KCONFIG_DIR) -> BuildPlan:
    """Refuse what cannot be built (with the reason) and decide the cache key.  ``directory``:
    where the fragments and base files are (kconfig/; tests pass their own)."""
    profile = arch_profile(arch)
    composition = compose(names, profile.name, series, directory)
    if not composition.needs_build:
        raise ConfigError(f"config {composition.label or '(none)'} sets only boot parameters: "
                          "it applies to Debian's kernels as they are, there is nothing to build")
    compiler, compiler_version = _compiler(profile, series)
    source = source or provision_source(series, progress=progress)
    requested = requested_options(profile, composition, directory)
    suffix = f"-kmodlab-{composition.label}"
    allconfig = allconfig_text(requested, suffix)
    inputs = {"format": FORMAT, "arch": profile.name, "source": source.version,
              "compiler": compiler_version, "allconfig": allconfig,
              "image": profile.kbuild_image_target}
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    return BuildPlan(profile, series, composition, source, compiler, compiler_version,
                     allconfig, tuple(requested), key)


def _make(plan: BuildPlan, build: Path, *targets: str, jobs: int | None = None) -> list[str]:
    argv = ["make", "-C", str(plan.source.tree), f"O={build}",
            f"ARCH={plan.profile.kbuild_arch}", f"CC={plan.compiler}"]
    if plan.profile.cross_compile:
        argv.append(f"CROSS_COMPILE={plan.profile.cross_compile}")
    if jobs:
        argv.append(f"-j{jobs}")
    return [*argv, *targets]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Reproducible identification strings: the same inputs give the same uname -v.
    env.update({"KBUILD_BUILD_USER": "kmodlab", "KBUILD_BUILD_HOST": "kmodlab",
                "KBUILD_BUILD_TIMESTAMP": "kmodlab", "LC_ALL": "C"})
    return env


def _run_logged(argv: list[str], log: Path, stage: str,
                on_line: Callable[[str], None] | None = None) -> None:
    """Run ``argv`` appending its output to ``log``; a failure names the first error lines."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", env=_env(),
                                stdin=subprocess.DEVNULL)
        errors: list[str] = []
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                if _ERROR.search(line) and len(errors) < 8:
                    errors.append(line.rstrip())
                if on_line is not None:
                    on_line(line)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if rc != 0:
        said = "\n  ".join(errors) or "(no error line; see the log)"
        raise ProvisionError(f"kernel build failed at {stage} (exit {rc}):\n  {said}\n"
                             f"full log: {log}")


def _expected_files(plan: BuildPlan) -> int | None:
    """Files compiled by an earlier build of the same arch and series (and, best, the same
    fragments): the denominator of the progress percentage."""
    best: tuple[int, int] | None = None
    for stats in cache_dir("kernels").glob(f"built-{plan.profile.name}-*/{STATS}"):
        try:
            data = json.loads(stats.read_text())
        except (OSError, ValueError):
            continue
        if data.get("series") != plan.series or not data.get("compiled"):
            continue
        score = 2 if tuple(data.get("config_names", ())) == plan.composition.names else 1
        if best is None or score > best[0]:
            best = (score, int(data["compiled"]))
    return best[1] if best else None


def build_kernel(arch: str, series: str, names: str | tuple[str, ...], *,
                 progress: Progress | None = None, jobs: int | None = None,
                 rebuild: bool = False, directory: Path = KCONFIG_DIR) -> Kernel:
    """The kernel of ``series`` for ``arch`` built with the fragments ``names`` (cached)."""
    from kmodlab.kernels.provisioning import _mark_sealed, _seal, load_kernel

    title = f"kernel {arch} {series} +{names if isinstance(names, str) else ','.join(names)}"
    with progress_reporter(progress, title) as report:
        plan = plan_build(arch, series, names, progress=report, directory=directory)
        entry = plan.entry
        if not rebuild and (entry / INTEGRITY).is_file() and (kernel := load_kernel(entry)):
            return kernel
        require_tool("make", "make")
        for tool, package in (("flex", "flex"), ("bison", "bison"), ("bc", "bc"),
                              ("depmod", "kmod")):
            require_tool(tool, package)
        with entry_lock(entry):
            if not rebuild and (entry / INTEGRITY).is_file() and \
                    (kernel := load_kernel(entry, locked=True)):
                return kernel
            kernel = _build_locked(plan, report, jobs or os.cpu_count() or 1, rebuild, _seal)
        _mark_sealed(entry)
        return kernel


def _build_locked(plan: BuildPlan, report: Progress, jobs: int, rebuild: bool,
                  seal: Callable[[Path, Kernel], None]) -> Kernel:
    entry = plan.entry
    if rebuild or (entry / INTEGRITY).exists():
        shutil.rmtree(entry, ignore_errors=True)       # --rebuild, or a sealed entry that failed
    entry.mkdir(parents=True, exist_ok=True)
    build = entry / BUILD_DIR
    build.mkdir(exist_ok=True)
    log = entry / LOG
    started = time.monotonic()
    allconfig = entry / "allconfig"
    allconfig.write_text(plan.allconfig)

    report("configuring (allnoconfig + base + fragments)", 0.0)
    env_config = ["KCONFIG_ALLCONFIG=" + str(allconfig)]
    _run_logged(_make(plan, build, *env_config, "allnoconfig"), log, "the config step")
    config = parse_kconfig((build / ".config").read_text())
    missing = missing_options(config, plan.requested)
    if missing:
        shutil.rmtree(entry, ignore_errors=True)     # nothing was compiled: nothing to resume
        raise KernelConfigError(plan.release, missing, advice=(
            "Kconfig dropped them after the config step, because a dependency is not met on "
            f"this arch or series ({plan.source.tree}: read the option's Kconfig entry). Nothing "
            "was compiled."))

    expected = _expected_files(plan)
    compiled = 0

    def count(line: str) -> None:
        nonlocal compiled
        if _COMPILED.match(line):
            compiled += 1
            if compiled % 25 == 0:
                fraction = min(0.99, compiled / expected) if expected else None
                report(f"compiling: {compiled} files"
                       + (f" of ~{expected}" if expected else ""), fraction)

    image_target = plan.profile.kbuild_image_target
    _run_logged(_make(plan, build, "vmlinux", "modules", image_target, jobs=jobs), log,
                "compiling", count)
    report("installing lib/modules", 0.99)
    root = entry / "root"
    _run_logged(_make(plan, build, f"INSTALL_MOD_PATH={root}", "DEPMOD=depmod",
                      "modules_install"), log, "modules_install")
    release = (build / "include" / "config" / "kernel.release").read_text().strip()
    if release != plan.release:
        raise ProvisionError(f"the build says its release is {release!r}, expected "
                             f"{plan.release!r} (CONFIG_LOCALVERSION was not applied?)")
    image = build / plan.profile.kbuild_image_path
    vmlinux = None
    from kmodlab.kernels.provisioning import PVH_BOOT_IMAGE
    from kmodlab.kernels.vmlinux import extract_vmlinux
    pvh = plan.profile.boot_image == PVH_BOOT_IMAGE and not any(
        config.get(option, "n") != "n" for option in plan.profile.pvh_blocked_by)
    if pvh and extract_vmlinux(image, entry / "vmlinux"):
        vmlinux = entry / "vmlinux"
    modules_dir = root / "lib" / "modules" / release
    for link in ("build", "source"):                     # modules_install's links to the tree
        (modules_dir / link).unlink(missing_ok=True)
    kernel = Kernel(arch=plan.profile.name, series=plan.series, flavour=FLAVOUR,
                    release=release, package_version=plan.source.version, root=entry,
                    image=image, vmlinux=vmlinux, config=build / ".config",
                    system_map=build / "System.map", modules_dir=modules_dir,
                    headers_dir=build, config_names=plan.composition.names,
                    boot_params=plan.composition.boot)
    _drop_objects(build)
    seconds = time.monotonic() - started
    (entry / STATS).write_text(json.dumps({
        "series": plan.series, "config_names": list(plan.composition.names),
        "compiled": compiled, "seconds": round(seconds, 1), "jobs": jobs,
        "source": plan.source.version, "compiler": plan.compiler_version}, indent=2))
    from kmodlab.kernels.provisioning import RESOLVED
    (entry / RESOLVED).write_text(json.dumps({
        "source_package": plan.source.package, "version": plan.source.version,
        "config_names": list(plan.composition.names), "key": plan.key}, indent=2))
    (entry / MANIFEST).write_text(kernel.to_json())
    report(f"sealing ({compiled} files compiled in {seconds:.0f} s)", 1.0)
    seal(entry, kernel)                                   # last: the entry is complete
    return kernel


def _drop_objects(build: Path) -> None:
    """Object files are done with once vmlinux is linked: a module build against this tree needs
    its headers, config, Module.symvers and host programs, never the kernel's own objects
    (~1 GB with debug info).  vmlinux stays: its DWARF symbolizes the kernel's frames."""
    for path in build.rglob("*.o"):
        path.unlink(missing_ok=True)
    for name in (".tmp_vmlinux.kallsyms1", ".tmp_vmlinux.kallsyms2", ".tmp_vmlinux.btf"):
        (build / name).unlink(missing_ok=True)


__all__ = [
    "FLAVOUR",
    "BuildPlan",
    "allconfig_text",
    "build_kernel",
    "missing_options",
    "plan_build",
    "requested_options",
]
