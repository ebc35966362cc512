"""The kernel's own user-space tools, built for a guest and run in it (today: slabinfo).

``tools/mm/slabinfo.c`` (``tools/vm/`` before 6.3) reads ``/sys/kernel/slab`` the way kernel
developers do; kmodlab's own tools (``guest_tools_src/``: ``kml_fragment``) do what no kernel
tool does.  kmodlab compiles it from the guest kernel's series' ``linux-source`` package
(:func:`kmodlab.kernels.source.provision_source`), statically, with the guest arch's compiler
from the registry (``user_cc``: the host's gcc, ``i686-linux-gnu-gcc``, ``aarch64-linux-gnu-gcc``
with Debian's ``libc6-dev-*-cross``), so the guest's busybox userland needs no C library.

A built tool is a cache entry (``cache_dir("guest-tools")``), keyed by the source version, the
arch and the compile command, sealed by a manifest so a damaged binary is rebuilt, not run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab.errors import ConfigError, MissingToolError, ProvisionError
from kmodlab.manifest import check_entry, write_manifest
from kmodlab.paths import atomic_dir, cache_dir, entry_lock
from kmodlab.registry.arch import arch_profile

if TYPE_CHECKING:
    from kmodlab.guest import Guest
    from kmodlab.kernels.kernel import Kernel
    from kmodlab.kernels.source import KernelSource

log = logging.getLogger(__name__)

GUEST_DIR = "/tmp/kml-tools"
"""Where the tools land in the guest (its root is a tmpfs: nothing outlives the guest)."""

FORMAT = 1
COMPILE_TIMEOUT = 300


OWN_SOURCES = Path(__file__).parent / "guest_tools_src"
"""kmodlab's own guest tools (one C file each), for what no kernel tool does."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool: where its single C file is in a kernel tree (first that exists), or, for
    kmodlab's own tools (``own``), in :data:`OWN_SOURCES`; and its flags."""

    name: str
    sources: tuple[str, ...] = ()
    own: bool = False
    cflags: tuple[str, ...] = ("-O2", "-Wall", "-static")


TOOLS: dict[str, ToolSpec] = {
    # tools/vm/ is tools/mm/ from 6.3 on (6.1's tree has tools/vm/slabinfo.c, 6.12's
    # tools/mm/slabinfo.c).
    "slabinfo": ToolSpec("slabinfo", ("tools/mm/slabinfo.c", "tools/vm/slabinfo.c")),
    # fragments physical memory with movable (anonymous) pages (the large-buffer claims)
    "kml_fragment": ToolSpec("kml_fragment", ("kml_fragment.c",), own=True),
}


def guest_path(name: str) -> str:
    """The tool's path in the guest."""
    return f"{GUEST_DIR}/{name}"


def compile_argv(spec: ToolSpec, arch: str, source: Path, out: Path) -> list[str]:
    """The compile command (pure: the cache key and the tests use it)."""
    return [arch_profile(arch).user_cc, *spec.cflags, "-o", str(out), str(source)]


def tool_source(spec: ToolSpec, tree: Path) -> Path:
    """The tool's C file in ``tree``; a ProvisionError if the tree has none of its paths."""
    for rel in spec.sources:
        if (tree / rel).is_file():
            return tree / rel
    raise ProvisionError(f"the kernel source {tree} has no {' or '.join(spec.sources)}")


def _spec(name: str) -> ToolSpec:
    if name not in TOOLS:
        raise ConfigError(f"unknown guest tool {name!r}; known: {', '.join(TOOLS)}")
    return TOOLS[name]


def build_tool(name: str, arch: str, source: KernelSource | None) -> Path:
    """The static ``name`` binary for ``arch`` (built on first use): from ``source``, the
    kernel tree, for the kernel's tools; from :data:`OWN_SOURCES` for kmodlab's own."""
    spec = _spec(name)
    profile = arch_profile(arch)
    if spec.own:
        src = tool_source(spec, OWN_SOURCES)
        version = "kmodlab-" + hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    else:
        if source is None:
            raise ProvisionError(f"{name} is built from the kernel's source: none was given")
        src, version = tool_source(spec, source.tree), source.version
    key = json.dumps([FORMAT, version, compile_argv(spec, arch, Path("S"), Path("O"))])
    entry = cache_dir("guest-tools") / \
        f"{name}-{version}-{arch}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    binary = entry / name
    if check_entry(entry, f"guest tool {name}", then="it will be built again") is None:
        return binary
    with entry_lock(entry):
        if check_entry(entry, f"guest tool {name}", locked=True) is None:
            return binary
        if not shutil.which(profile.user_cc):
            raise MissingToolError(profile.user_cc, " ".join(profile.user_cc_packages) or "gcc")
        with atomic_dir(entry) as tmp:
            argv = compile_argv(spec, arch, src, tmp / name)
            try:
                done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                      timeout=COMPILE_TIMEOUT, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise ProvisionError(f"compiling {name} did not finish in {COMPILE_TIMEOUT} s") \
                    from None
            if done.returncode != 0:
                hint = (f" (a static C library for {arch} comes with "
                        f"{' '.join(profile.user_cc_packages)})"
                        if "cannot find -lc" in done.stderr else "")
                shown = src.name if spec.own or source is None else src.relative_to(source.tree)
                raise ProvisionError(f"compiling {shown} for {arch} failed{hint}: "
                                     f"{done.stderr.strip()[-1500:]}")
            (tmp / "tool.json").write_text(json.dumps(
                {"format": FORMAT, "tool": name, "arch": arch, "source": version,
                 "compiler": profile.user_cc, "cflags": list(spec.cflags)}, indent=2))
            write_manifest(tmp)                                      # last
    return binary


def install_tools(guest: Guest, kernel: Kernel, names: tuple[str, ...]) -> None:
    """Build (cached) and push ``names`` into the guest at :func:`guest_path`, unless the guest
    has them already (a warm guest across a check's probes)."""
    if not names:
        return
    from kmodlab.kernels.source import provision_source

    missing = [n for n in names
               if not guest.run(f"test -x {guest_path(n)}", isolate=False).ok]
    if not missing:
        return
    source = (provision_source(kernel.series)
              if any(not _spec(n).own for n in missing) else None)
    guest.run(f"mkdir -p {GUEST_DIR}", isolate=False, must_succeed=True)
    for name in missing:
        binary = build_tool(name, kernel.arch, source)
        guest.push(binary, guest_path(name))
        guest.run(f"chmod 755 {guest_path(name)}", isolate=False, must_succeed=True)
        log.info("guest tool %s installed", name)


__all__ = ["GUEST_DIR", "OWN_SOURCES", "TOOLS", "ToolSpec", "build_tool", "compile_argv", "guest_path",
           "install_tools", "tool_source"]
