"""Check a kernel's .config against what kmodlab needs (``kconfig/*.config`` in the checkout).

Why up front: a kernel without, say, SLUB_DEBUG boots fine and then every slabinfo read fails in
some unrelated-looking way.  The requirement files are data (one per arch plus a common one), in
.config syntax extended with ``y|m`` alternatives and ``=n`` for "must be unset".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import ConfigError, KernelConfigError
from kmodlab.kernels.kernel import Kernel, parse_kconfig
from kmodlab.locate import data_dir
from kmodlab.registry.arch import arch_profile

KCONFIG_DIR = data_dir("kconfig")
COMMON_FILE = "required.config"

_LINE = re.compile(r"^(?P<option>CONFIG_[A-Za-z0-9_]+)=(?P<values>\S+)\s*(?:#\s*(?P<why>.*))?$")


@dataclass(frozen=True)
class Requirement:
    option: str
    allowed: tuple[str, ...]     # e.g. ("y", "m"); "n" means unset
    why: str
    where: str                   # file:line, for error messages

    def accepts(self, value: str | None) -> bool:
        return (value or "n") in self.allowed

    def describe(self, value: str | None) -> str:
        want = " or ".join("not set" if v == "n" else v for v in self.allowed)
        found = "not set" if value in (None, "n") else value
        why = f" ({self.why})" if self.why else ""
        return f"{self.option}: need {want}, found {found}{why}"


def parse_requirements(text: str, source: str = "<text>") -> list[Requirement]:
    """Parse a requirement file; a malformed line is a ConfigError naming file and line."""
    reqs = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise ConfigError(
                f"{source}:{lineno}: cannot read {raw!r}; expected CONFIG_X=y, CONFIG_X=y|m or "
                "CONFIG_X=n, optionally followed by '# why'"
            )
        allowed = tuple(v for v in m["values"].split("|") if v)
        reqs.append(Requirement(m["option"], allowed, (m["why"] or "").strip(),
                                f"{source}:{lineno}"))
    return reqs


def load_requirements(arch: str, directory: Path = KCONFIG_DIR) -> list[Requirement]:
    """The common requirements plus the arch's file (its registry entry names it); a later line
    overrides an earlier one."""
    profile = arch_profile(arch)
    files = [directory / COMMON_FILE] + ([directory / profile.kconfig] if profile.kconfig else [])
    reqs: dict[str, Requirement] = {}
    for path in files:
        if not path.is_file():
            raise ConfigError(f"kernel requirements file {path} is missing")
        for r in parse_requirements(path.read_text(), str(path)):
            reqs[r.option] = r
    return list(reqs.values())


def check_config(config: dict[str, str], requirements: list[Requirement]) -> list[str]:
    """One line per unmet requirement; empty if the config has everything."""
    return [r.describe(config.get(r.option)) for r in requirements
            if not r.accepts(config.get(r.option))]


def check_kernel_config(kernel: Kernel, directory: Path = KCONFIG_DIR) -> list[str]:
    """Missing or wrong options of ``kernel`` (see kconfig/); empty if it has what kmodlab needs."""
    if not kernel.config.is_file():
        raise ConfigError(f"kernel {kernel.release} has no .config at {kernel.config}")
    requirements = {r.option: r for r in load_requirements(kernel.arch, directory)}
    if kernel.config_names:
        # A fragment may replace a requirement on purpose (slab: SLAB instead of SLUB).
        from kmodlab.kernels.fragments import compose

        composition = compose(kernel.config_names, kernel.arch, kernel.series, directory)
        requirements.update({r.option: r for r in composition.options})
    return check_config(parse_kconfig(kernel.config.read_text()), list(requirements.values()))


def require_kernel_config(kernel: Kernel, directory: Path = KCONFIG_DIR) -> None:
    """Raise KernelConfigError naming every unmet option."""
    missing = check_kernel_config(kernel, directory)
    if missing:
        raise KernelConfigError(kernel.release, missing)
