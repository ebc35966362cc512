"""A target (arch, kernel, flavour) and matching tests to targets: constraints, shards."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from kmodlab.errors import ConfigError
from kmodlab.registry.arch import ALIASES

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)\.(\d+)\s*$")


@dataclass(frozen=True, order=True)
class Target:
    """What one guest runs: an arch, a kernel (a series or an exact release) and a flavour.

    Every command, the pytest plugin, labs, claims, the cross-check and the CI templates name a
    kernel this way; :func:`kmodlab.registry.target` builds one with the registry's defaults and
    refuses a combination the registry does not have, saying why.  ``flavour`` is empty for the
    registry's default flavour, so one target has one spelling.
    """

    arch: str
    kernel: str
    flavour: str = ""
    config: str = ""      # config fragments (kconfig/<name>.config), sorted, comma-joined

    @property
    def series(self) -> str:
        """The series of the kernel (``6.1.0-56`` -> ``6.1``)."""
        major, minor = version_of(self.kernel)
        return f"{major}.{minor}"

    @property
    def flavour_name(self) -> str:
        """The flavour spelled out (the registry's default when ``flavour`` is empty)."""
        from kmodlab.registry import default_flavour

        return self.flavour or default_flavour(self.arch)

    @property
    def label(self) -> str:
        """``x86_64-6.1`` (``x86_64-6.1-generic`` for another flavour, ``x86_64-6.1+debug-memory``
        with config fragments): ids and file names."""
        base = "-".join(p for p in (self.arch, self.kernel, self.flavour) if p)
        return f"{base}+{self.config.replace(',', '+')}" if self.config else base

    @property
    def spec(self) -> str:
        """``x86_64:6.1`` (``x86_64:6.1:generic``, ``x86_64:6.1+debug-memory``): what lab.yaml's
        grade_on accepts."""
        base = ":".join(p for p in (self.arch, self.kernel, self.flavour) if p)
        return f"{base}+{self.config.replace(',', '+')}" if self.config else base

    def __str__(self) -> str:
        return self.spec


def split_spec(text: str) -> tuple[str, str, str, str]:
    """``ARCH:KERNEL[:FLAVOUR][+FRAGMENT...]`` -> (arch, kernel, flavour, "a,b"); anything else
    is a ConfigError saying the form."""
    spec, *fragments = text.strip().split("+")
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts) or not all(fragments):
        raise ConfigError(f"target {text!r} must be ARCH:KERNEL[:FLAVOUR][+CONFIG...], e.g. "
                          "x86_64:6.1 or x86_64:6.1+debug-memory")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else "", ",".join(fragments)


def version_of(series_or_release: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", series_or_release)
    if not m:
        raise ConfigError(f"cannot read a kernel version from {series_or_release!r}")
    return int(m.group(1)), int(m.group(2))


def kernel_matches(series: str, constraint: object) -> bool:
    """``constraint``: None, "6.12", ">=6.5", or a list of those (all must hold)."""
    if constraint is None:
        return True
    items = constraint if isinstance(constraint, (list, tuple)) else [constraint]
    version = version_of(series)
    for item in items:
        m = _CONSTRAINT.match(str(item))
        if not m:
            raise ConfigError(f"bad kernel constraint {item!r}; write e.g. '>=6.5' or '6.1'")
        op = _OPS[m.group(1) or "=="]
        if not op(version, (int(m.group(2)), int(m.group(3)))):
            return False
    return True


def arch_matches(arch: str, wanted: object) -> bool:
    if wanted is None:
        return True
    items = wanted if isinstance(wanted, (list, tuple)) else [wanted]
    return arch in {ALIASES.get(str(w), str(w)) for w in items}


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(f"bad shard {text!r}; write I/N with 1 <= I <= N, e.g. 2/4")
    return int(m.group(1)), int(m.group(2))
