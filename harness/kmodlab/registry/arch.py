"""Per-architecture settings, read from the YAML files in ``arches/``.

Adding an architecture means adding a file there, not editing code (the kunit_tool way).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kmodlab.errors import ConfigError

ARCH_DIR = Path(__file__).resolve().parent / "arches"

# Names users type that mean the same architecture.
ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}


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

    def virtio_device(self, kind: str) -> str:
        """QEMU device name of a virtio device on this machine, e.g. ``virtio-net-pci``."""
        return f"virtio-{kind}{self.virtio_suffix}"


def known_arches() -> list[str]:
    return sorted(p.stem for p in ARCH_DIR.glob("*.yaml"))


@functools.cache
def arch_profile(name: str) -> ArchProfile:
    canonical = ALIASES.get(name, name)
    path = ARCH_DIR / f"{canonical}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown architecture '{name}'; known: {', '.join(known_arches())}"
        )
    data = yaml.safe_load(path.read_text())
    for key in ("extra_args", "cmdline", "kvm_host_machines", "kvm_probe_args"):
        data[key] = tuple(data.get(key) or ())
    try:
        return ArchProfile(**data)
    except TypeError as exc:  # a misspelled or missing key in the data file
        raise ConfigError(f"{path}: {exc}") from exc
