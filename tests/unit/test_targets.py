"""Marker matching and sharding for the pytest plugin."""

from __future__ import annotations

import pytest

from kmodlab.errors import ConfigError
from kmodlab.registry.target import arch_matches, kernel_matches, parse_shard, version_of


@pytest.mark.parametrize(("series", "constraint", "expected"), [
    ("6.1", None, True), ("6.1", ">=6.5", False), ("6.12", ">=6.5", True),
    ("6.12", "6.12", True), ("6.1", "6.12", False), ("6.12.57+deb12", "<6.13", True),
    ("6.12", [">=6.1", "<6.12"], False), ("6.1.0-56", "!=6.12", True),
])
def test_kernel_constraints(series: str, constraint: object, expected: bool) -> None:
    assert kernel_matches(series, constraint) is expected


def test_bad_constraint_is_explained() -> None:
    with pytest.raises(ConfigError, match=">=6.5"):
        kernel_matches("6.1", "newer than 6")


def test_arch_lists_and_aliases() -> None:
    assert arch_matches("arm64", ["aarch64"]) and not arch_matches("x86_64", "arm64")
    assert arch_matches("x86_64", None)


def test_shards() -> None:
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_version_of_release() -> None:
    assert version_of("6.12.117+deb12-cloud-arm64") == (6, 12)
