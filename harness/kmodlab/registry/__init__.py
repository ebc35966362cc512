"""The registry: every arch, kernel series and flavour kmodlab knows, as data.

``arches/<arch>.yaml`` holds an arch (QEMU profile, Debian arch name, toolchain prefix, page
sizes, guest userland layout, kconfig requirement file); ``series.yaml`` the series (suites,
package templates, compiler and build environment), the flavours, and the defaults.  Code and
help texts take every list of arches, series and flavours from here, never from literals, so a
new series or arch is a data entry (docs/architecture.md shows one).
"""

from __future__ import annotations

from collections.abc import Sequence

from kmodlab.errors import ConfigError
from kmodlab.registry.arch import (
    ArchProfile,
    GuestUserland,
    arch_profile,
    canonical_arch,
    known_arches,
)
from kmodlab.registry.series import Flavour, Series, SeriesTable, load_series
from kmodlab.registry.target import (
    Target,
    arch_matches,
    kernel_matches,
    parse_shard,
    split_spec,
    version_of,
)

__all__ = [
    "ArchProfile", "Flavour", "GuestUserland", "Series", "SeriesTable", "Target",
    "arch_matches", "arch_names", "arch_profile", "canonical_arch", "default_flavour",
    "default_target",
    "flavour_names", "kernel_matches", "load_series", "matrix", "parse_shard", "parse_target",
    "series_names", "target", "version_of",
]


def arch_names() -> tuple[str, ...]:
    """Every arch with a registry file: the default arch first, then the others sorted."""
    first = load_series().default_arch
    return (first, *(a for a in known_arches() if a != first))


def series_names() -> tuple[str, ...]:
    """Every kernel series, in the table's order (oldest first)."""
    return tuple(load_series().series)


def flavour_names() -> tuple[str, ...]:
    return tuple(load_series().flavours)


def default_target() -> Target:
    table = load_series()
    return Target(table.default_arch, table.default_series)


def default_flavour() -> str:
    return load_series().default_flavour


def _supported(names: tuple[str, ...], arch: str) -> bool:
    return not names or arch in names


def target(arch: str | None = None, kernel: str | None = None,
           flavour: str | None = None, config: str | Sequence[str] | None = None) -> Target:
    """A checked :class:`Target`; ``None`` takes the registry's default.

    ``kernel`` may be a series (``6.12``) or an exact release (``6.1.0-56``); a release's series
    must be in the table.  Unknown names and combinations Debian does not build are refused with
    the known choices named.
    """
    table = load_series()
    profile = arch_profile(canonical_arch(arch or table.default_arch))
    kernel = str(kernel or table.default_series)
    series = _series_of(kernel, table)
    if not _supported(series.arches, profile.name):
        raise ConfigError(f"Debian builds no {profile.name} kernel of series {series.name} "
                          f"(it has {', '.join(series.arches)})")
    chosen = table.get_flavour(flavour or None)
    if not _supported(chosen.arches, profile.name):
        raise ConfigError(f"flavour {chosen.name} exists only for {', '.join(chosen.arches)}, "
                          f"not {profile.name}")
    flavour_field = "" if chosen.name == table.default_flavour else chosen.name
    names = ""
    if config:
        from kmodlab.kernels.fragments import compose

        composition = compose(config, profile.name, series.name)
        if composition.needs_build and flavour_field:
            raise ConfigError(f"config {composition.label} builds a kernel from Debian's source "
                              f"with kmodlab's own config: a Debian flavour ({flavour_field}) "
                              "does not apply to it")
        if composition.needs_build and kernel != series.name:
            raise ConfigError(f"config {composition.label} builds a kernel from the newest "
                              f"linux-source-{series.name}: give the series ({series.name}), "
                              f"not the release {kernel}")
        names = ",".join(composition.names)
    return Target(profile.name, kernel, flavour_field, names)


def parse_target(text: str) -> Target:
    """``x86_64:6.1``, ``arm64:6.12:generic`` or ``x86_64:6.1+debug-memory`` -> a checked
    :class:`Target`."""
    return target(*split_spec(text))


def _series_of(kernel: str, table: SeriesTable) -> Series:
    if kernel in table.series:
        return table.series[kernel]
    try:
        major, minor = version_of(kernel)
    except ConfigError:
        return table.get_series(kernel)   # raises, naming the known series
    return table.get_series(f"{major}.{minor}")


def matrix(arches: Sequence[str] | None = None, kernels: Sequence[str] | None = None,
           flavour: str | None = None) -> list[Target]:
    """Every supported (arch, kernel) pair of the given subsets (default: all), arch-major.

    Pairs Debian does not build (the series lists its arches) are left out, not refused: a
    matrix asks for what exists.  An unknown name is still refused.
    """
    table = load_series()
    out = []
    for arch in arches or arch_names():
        for kernel in kernels or series_names():
            series = _series_of(str(kernel), table)
            if _supported(series.arches, canonical_arch(arch)):
                out.append(target(arch, str(kernel), flavour))
    return out
