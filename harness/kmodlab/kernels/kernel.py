"""A provisioned kernel: everything needed to boot it and to build modules for it.

This is the contract between provisioning (``kmodlab.kernels``), the guest image builder, the QEMU
launcher, the module builder and the model.  It is written to ``kernel.json`` in the kernel's cache
entry, so a cached kernel is loaded without touching apt.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = "kernel.json"


@dataclass(frozen=True)
class Kernel:
    arch: str              # kmodlab arch profile name: "x86_64" or "arm64"
    series: str            # "6.1", "6.12", or "custom" for a user's own kernel
    flavour: str           # Debian flavour: "cloud", "generic", or "custom"
    release: str           # what `uname -r` prints, e.g. "6.1.0-56-cloud-amd64"
    package_version: str   # Debian package version, e.g. "6.1.192-2" ("" for custom)
    root: Path             # the cache entry holding everything below
    image: Path            # the bootable image (bzImage / arm64 Image)
    vmlinux: Path | None   # uncompressed ELF vmlinux for PVH direct boot (x86), if extracted
    config: Path           # the kernel's .config
    system_map: Path       # System.map (Debian ships a stub; may be empty of symbols)
    modules_dir: Path      # lib/modules/<release> (with modules.dep)
    headers_dir: Path      # kbuild tree: `make -C headers_dir M=...` builds modules for it
    # Config fragments (kconfig/<name>.config) this kernel was built with from Debian's source,
    # or boot-only fragments applied to a stock kernel; () for Debian's kernel as it is.
    config_names: tuple[str, ...] = ()
    boot_params: tuple[str, ...] = ()  # kernel parameters the fragments need at every boot

    @property
    def version(self) -> tuple[int, int]:
        """(major, minor) from the release, e.g. (6, 12)."""
        m = re.match(r"(\d+)\.(\d+)", self.release)
        if not m:
            raise ValueError(f"cannot read a version from release {self.release!r}")
        return int(m.group(1)), int(m.group(2))

    @property
    def page_size(self) -> int:
        """PAGE_SIZE from the .config: CONFIG_PAGE_SHIFT (6.9+, every arch) or 6.1's
        CONFIG_ARM64_PAGE_SHIFT; 4096 when neither is set (x86)."""
        for name in ("CONFIG_PAGE_SHIFT", "CONFIG_ARM64_PAGE_SHIFT"):
            value = self.kconfig.get(name)
            if value and value.strip('"').isdigit():
                return 1 << int(value.strip('"'))
        return 4096

    @property
    def boot_cmdline(self) -> tuple[str, ...]:
        """Every kernel parameter this kernel boots with: its series' (the registry's ``boot``,
        e.g. 5.10's static-key fix-up) and then its fragments'."""
        from kmodlab.registry import series_boot_params  # the registry imports kernels lazily

        return (*series_boot_params(self.series), *self.boot_params)

    @property
    def boot_image(self) -> Path:
        """What QEMU's -kernel gets: the PVH vmlinux when there is one, else the image."""
        return self.vmlinux if self.vmlinux is not None else self.image

    @functools.cached_property
    def kconfig(self) -> dict[str, str]:
        """CONFIG_* -> value ("y", "m", "128", '"str"'); unset options are absent."""
        return parse_kconfig(self.config.read_text())

    def to_json(self) -> str:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Kernel:
        data = json.loads(text)
        for key in ("root", "image", "config", "system_map", "modules_dir", "headers_dir"):
            data[key] = Path(data[key])
        data["vmlinux"] = Path(data["vmlinux"]) if data.get("vmlinux") else None
        for key in ("config_names", "boot_params"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)

    @property
    def label(self) -> str:
        """Short id used in test ids and file names, e.g. ``arm64-6.12``
        (``x86_64-7.2-rt`` for a flavour other than the arch's default, as
        :attr:`kmodlab.registry.Target.label` writes it; ``x86_64-6.1+debug-memory`` for a kernel
        with config fragments)."""
        base = f"{self.arch}-{self.series}"
        if self.flavour and not self.config_names and self.flavour != "custom":
            from kmodlab import registry  # the registry imports kernels lazily too

            if self.arch in registry.arch_names() and self.flavour != registry.default_flavour(
                    self.arch):
                base += f"-{self.flavour}"
        return f"{base}+{'+'.join(self.config_names)}" if self.config_names else base


def parse_kconfig(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values
