"""Matching tests to targets: arch lists, kernel version constraints, shards."""

from __future__ import annotations

import operator
import re

from kmodlab.errors import ConfigError
from kmodlab.registry.arch import ALIASES

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}
_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<)?\s*(\d+)\.(\d+)\s*$")


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
