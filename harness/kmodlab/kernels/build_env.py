"""How to run kbuild for an out-of-tree module against a provisioned kernel.

The argv comes from the arch profile (ARCH=, CROSS_COMPILE=), never from ``if arch == ...``.
The host tools a kernel's headers need are derived from its .config (compiler name, BTF), so a
missing one is reported up front, with its Debian package, instead of as a make error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import MissingToolError, ProvisionError
from kmodlab.kernels.kernel import Kernel
from kmodlab.registry.arch import ArchProfile, arch_profile


def kbuild_command(kernel: Kernel, module_dir: Path, target: str = "modules") -> list[str]:
    """``make -C <headers> M=<module_dir> ARCH=… [CROSS_COMPILE=…] <target>``."""
    profile = arch_profile(kernel.arch)
    argv = ["make", "-C", str(kernel.headers_dir), f"M={Path(module_dir).resolve()}",
            f"ARCH={profile.kbuild_arch}"]
    if profile.cross_compile:
        argv.append(f"CROSS_COMPILE={profile.cross_compile}")
    btf = kernel.kconfig.get("CONFIG_DEBUG_INFO_BTF_MODULES") == "y"
    if btf and not module_btf_possible(kernel):
        # Without the BTF base kbuild prints "Skipping BTF generation ..." for every module.
        argv.append("CONFIG_DEBUG_INFO_BTF_MODULES=")
    argv.append(target)
    return argv


def module_btf_possible(kernel: Kernel) -> bool:
    """Module BTF is deduplicated against the kernel's: kbuild needs ``<headers>/vmlinux``.

    Debian ships a BTF-only vmlinux in 6.12's headers, none in 6.1's.
    """
    return (kernel.headers_dir / "vmlinux").is_file()


@dataclass(frozen=True)
class HostTool:
    tool: str
    package: str
    why: str


def _compiler(cc_text: str, profile: ArchProfile) -> HostTool:
    """From CONFIG_CC_VERSION_TEXT (``"gcc-12 (Debian 12.2.0-14) 12.2.0"``) to tool + package.

    Debian's headers call ``$(CROSS_COMPILE)gcc-12`` exactly, so plain ``gcc`` is not enough.
    """
    word = cc_text.strip().strip('"').split(" ", 1)[0] or "gcc"
    if word.startswith("clang") or "clang version" in cc_text:
        return HostTool("clang", "clang", "the kernel was built with clang")
    # 7.2's headers name the compiler with its triplet (x86_64-linux-gnu-gcc-16) and override
    # CROSS_COMPILE to match (.kernelvariables); the triplet is the headers', not the profile's.
    m = re.fullmatch(r"(?:(?P<triplet>[a-z0-9_]+-linux-gnu[a-z0-9_]*)-)?gcc(?:-(?P<v>\d+))?",
                     word)
    if m and m["triplet"]:
        package = f"gcc-{m['v']}" if m["v"] else "gcc"
        return HostTool(word, package, "kbuild's CC for this kernel")
    if not m:
        word = "gcc"
    triplet = profile.cross_compile.rstrip("-")
    if m and m["v"]:
        package = f"gcc-{m['v']}" + (f"-{triplet}" if triplet else "")
    else:
        package = profile.cross_compiler_package or "gcc"
    return HostTool(profile.cross_compile + word, package, "kbuild's CC for this kernel")


def compiler(kernel: Kernel) -> HostTool:
    """The C compiler kbuild runs for ``kernel`` (e.g. ``aarch64-linux-gnu-gcc-12``)."""
    return _compiler(kernel.kconfig.get("CONFIG_CC_VERSION_TEXT", "gcc"), arch_profile(kernel.arch))


def required_tools(kernel: Kernel) -> list[HostTool]:
    """Host tools a module build for ``kernel`` runs: make, the compiler (always second), ..."""
    profile = arch_profile(kernel.arch)
    config = kernel.kconfig
    triplet = profile.cross_compile.rstrip("-")
    tools = [
        HostTool("make", "make", "runs kbuild"),
        compiler(kernel),
        HostTool(profile.cross_compile + "ld",
                 f"binutils-{triplet}" if triplet else "binutils", "links the .ko"),
    ]
    if config.get("CONFIG_DEBUG_INFO_BTF_MODULES") == "y" and module_btf_possible(kernel):
        tools.append(HostTool("pahole", "dwarves", "module BTF (CONFIG_DEBUG_INFO_BTF_MODULES)"))
    return tools


# Shared libraries Debian's kbuild helpers link against -> the Debian package with each.
LIBRARY_PACKAGES = {"libelf.so.1": "libelf1", "libz.so.1": "zlib1g", "libcrypto.so.3": "libssl3"}

# kbuild helper binaries a module build runs (objtool on x86 only: absent elsewhere is fine).
KBUILD_HELPERS = ("scripts/basic/fixdep", "scripts/mod/modpost", "tools/objtool/objtool",
                  "tools/objtool/objtool.real-x86")


def missing_libraries(binary: Path) -> list[str]:
    """Shared libraries ``ldd`` cannot find for ``binary`` (none if ldd is unavailable)."""
    if not binary.is_file() or not shutil.which("ldd"):
        return []
    out = subprocess.run(["ldd", str(binary)], capture_output=True, check=False, text=True)
    return [line.split()[0] for line in out.stdout.splitlines() if "not found" in line]


def check_build_tools(kernel: Kernel) -> None:
    """Raise MissingToolError for the first host tool or library the kernel's kbuild lacks.

    For a kernel whose modules build in a Debian root, that root is made (or healed) here and
    the jail's probe checks its toolchain; the host needs bubblewrap for it."""
    from kmodlab.kernels.build_root import root_for

    root = root_for(kernel)
    if root is not None:
        if not shutil.which("bwrap"):
            raise MissingToolError("bwrap", "bubblewrap")
        for t in required_tools(kernel):
            if not root.has(t.tool):
                raise ProvisionError(f"{t.tool} ({t.why}) is not in the {root.suite} build root "
                                     f"{root.path}; its packages in series.yaml build_envs "
                                     f"lack {t.package}")
        return
    for t in required_tools(kernel):
        if not shutil.which(t.tool):
            raise MissingToolError(t.tool, t.package)
    for helper in KBUILD_HELPERS:
        for lib in missing_libraries(kernel.headers_dir / helper):
            raise MissingToolError(lib, LIBRARY_PACKAGES.get(lib, f"<the package with {lib}>"))
