"""Per-architecture facts, read from the YAML files in ``arches/`` (one file an arch).

Adding an architecture means adding a file there, not editing code (the kunit_tool way): the
QEMU profile, the Debian arch name, the kbuild toolchain, page sizes, the guest userland's
multiarch facts and the kconfig requirement file all live in it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.errors import ConfigError

ARCH_DIR = Path(__file__).resolve().parent / "arches"

# Names users type that mean the same architecture.
ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}


@dataclass(frozen=True)
class GuestUserland:
    """Where a Debian arch's userland puts things: decides the guest image's layout."""

    triplet: str          # Debian multiarch directory name, e.g. x86_64-linux-gnu
    loader: str           # the dynamic loader's canonical path (every binary's PT_INTERP)
    elf_machine: int      # e_machine of its binaries, to catch a wrong-arch file early

    @property
    def lib_dir(self) -> str:
        return f"/lib/{self.triplet}"

    @property
    def search_dirs(self) -> tuple[str, ...]:
        """Where the guest loader looks (Debian's multiarch defaults), in its order."""
        return (f"/lib/{self.triplet}", f"/usr/lib/{self.triplet}", "/lib", "/usr/lib")


@dataclass(frozen=True)
class ArchProfile:
    name: str
    debian_arch: str
    kbuild_arch: str
    cross_compile: str
    cross_compiler_package: str
    qemu_binary: str
    qemu_package: str
    machine: str
    cpu: str
    kvm_cpu: str
    kernel_console: str
    boot_image: str
    virtio_bus: str
    virtio_suffix: str
    nic_romfile: bool
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    cmdline: tuple[str, ...] = field(default_factory=tuple)
    kvm_host_machines: tuple[str, ...] = field(default_factory=tuple)
    kvm_probe_args: tuple[str, ...] = field(default_factory=tuple)
    kvm_probe_sign: str = ""
    page_sizes: tuple[int, ...] = (4096,)     # PAGE_SIZE of the kernels Debian builds for it
    kconfig: str = ""                         # the arch's requirement file in kconfig/
    # Kernels built from source (kmodlab.kernels.kbuild): the base added to kconfig/build-base
    # .config, kbuild's image target and where the build leaves it.
    build_kconfig: str = ""
    pvh_blocked_by: tuple[str, ...] = field(default_factory=tuple)
    kbuild_image_target: str = ""
    kbuild_image_path: str = ""
    guest: GuestUserland | None = None
    # The arch's name in Debian's kernel flavours (686-pae on i386); empty: debian_arch.
    kernel_arch: str = ""
    # The flavour used when none is asked for, if not the series table's default.
    default_flavour: str = ""
    # What a build root of another Debian release needs to build for this arch from the
    # host's ({compiler}: the series' compiler, e.g. gcc-16-aarch64-linux-gnu).
    cross_packages: tuple[str, ...] = field(default_factory=tuple)
    # TCG CPU models for kernels whose page size ``cpu`` cannot run (PAGE_SIZE -> model).
    page_size_cpus: dict[int, str] = field(default_factory=dict)
    # Guest tools (the kernel's own tools/mm/slabinfo.c): the host's C compiler for the guest's
    # userland and the Debian packages that give it a static C library (kmodlab.guest_tools).
    user_cc: str = "gcc"
    user_cc_packages: tuple[str, ...] = field(default_factory=tuple)

    def tcg_cpu(self, page_size: int) -> str:
        """The CPU model QEMU emulates for a kernel with ``page_size`` pages."""
        return self.page_size_cpus.get(page_size, self.cpu)

    @property
    def flavour_arch(self) -> str:
        """``amd64``, ``arm64``, ``686-pae``: what Debian's kernel release names end in."""
        return self.kernel_arch or self.debian_arch

    @property
    def userland(self) -> GuestUserland:
        if self.guest is None:
            raise ConfigError(f"arch {self.name}: its registry file has no guest: section")
        return self.guest

    def virtio_device(self, kind: str) -> str:
        """QEMU device name of a virtio device on this machine, e.g. ``virtio-net-pci``."""
        return f"virtio-{kind}{self.virtio_suffix}"


def known_arches() -> list[str]:
    """Every arch with a file in ``arches/``, sorted."""
    return sorted(p.stem for p in ARCH_DIR.glob("*.yaml"))


def canonical_arch(name: str) -> str:
    """``amd64`` -> ``x86_64``; an unknown name is returned as it is (arch_profile refuses it)."""
    return ALIASES.get(name, name)


@functools.cache
def arch_profile(name: str) -> ArchProfile:
    canonical = ALIASES.get(name, name)
    path = ARCH_DIR / f"{canonical}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown architecture '{name}'; known: {', '.join(known_arches())}"
        )
    import yaml  # here, not at the top: kmodlab's parser imports the registry, never reads it

    data = yaml.safe_load(path.read_text())
    for key in ("extra_args", "cmdline", "kvm_host_machines", "kvm_probe_args", "page_sizes",
                "pvh_blocked_by", "cross_packages", "user_cc_packages"):
        if key in data:
            data[key] = tuple(data.get(key) or ())
    try:
        if "guest" in data:
            data["guest"] = GuestUserland(**data["guest"])
        data["page_size_cpus"] = {int(k): str(v) for k, v in
                                  (data.get("page_size_cpus") or {}).items()}
        return ArchProfile(**data)
    except TypeError as exc:  # a misspelled or missing key in the data file
        raise ConfigError(f"{path}: {exc}") from exc
