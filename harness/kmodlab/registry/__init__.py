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
    "arch_matches", "arch_names", "arch_profile", "canonical_arch", "core_arches", "core_series",
    "default_flavour",
    "default_target",
    "flavour_names", "kernel_matches", "load_series", "matrix", "parse_shard", "parse_target",
    "series_boot_params", "series_names", "target", "version_of",
]


def arch_names() -> tuple[str, ...]:
    """Every arch with a registry file: the default arch first, then the others sorted."""
    first = load_series().default_arch
    return (first, *(a for a in known_arches() if a != first))


def series_names() -> tuple[str, ...]:
    """Every kernel series, in the table's order (oldest first)."""
    return tuple(load_series().series)


def core_arches() -> tuple[str, ...]:
    """The core matrix's arches (series.yaml ``core:``): labs' default, CI's deep tier."""
    return load_series().core_arches or arch_names()


def core_series() -> tuple[str, ...]:
    """The core matrix's series: labs' default, CI's deep tier."""
    return load_series().core_series or series_names()


def series_boot_params(series: str) -> tuple[str, ...]:
    """Kernel parameters every kernel of ``series`` boots with (series.yaml ``boot``); none
    for a series the registry does not list (a custom kernel's)."""
    found = load_series().series.get(series)
    return found.boot if found else ()


def flavour_names() -> tuple[str, ...]:
    return tuple(load_series().flavours)


def default_target() -> Target:
    table = load_series()
    return Target(table.default_arch, table.default_series)


def default_flavour(arch: str | None = None) -> str:
    """The flavour used when none is asked for: the arch's own default, else the table's."""
    table = load_series()
    if arch is None:
        return table.default_flavour
    return table.default_flavour_for(arch_profile(canonical_arch(arch))).name


def _supported(names: tuple[str, ...], name: str) -> bool:
    return not names or name in names


def target(arch: str | None = None, kernel: str | None = None,
           flavour: str | None = None, config: str | Sequence[str] | None = None) -> Target:
    """A checked :class:`Target`; ``None`` takes the registry's default.

    ``kernel`` may be a series (``6.12``), ``latest`` (the newest series) or an exact release
    (``6.1.0-56``); a release's series must be in the table.  Unknown names and combinations
    Debian does not build are refused with the reason and the known choices.
    """
    table = load_series()
    profile = arch_profile(canonical_arch(arch or table.default_arch))
    kernel = table.series_name(str(kernel or table.default_series))
    series = _series_of(kernel, table)
    if not _supported(series.arches, profile.name):
        newest = max((s for s in table.series.values() if _supported(s.arches, profile.name)),
                     key=lambda s: s.version, default=None)
        after = f"Debian builds no {profile.name} kernel after {newest.name}" if newest and \
            newest.version < series.version else f"Debian builds no {profile.name} kernel of " \
            f"series {series.name}"
        raise ConfigError(f"{after} (series {series.name} has {', '.join(series.arches)})")
    default = table.default_flavour_for(profile)
    chosen = table.get_flavour(flavour) if flavour else default
    if not _supported(chosen.arches, profile.name):
        raise ConfigError(f"flavour {chosen.name} exists only for {', '.join(chosen.arches)}, "
                          f"not {profile.name}")
    if not _supported(chosen.series, series.name):
        raise ConfigError(f"flavour {chosen.name} exists only in series "
                          f"{', '.join(chosen.series)}: Debian builds none for {series.name}")
    flavour_field = "" if chosen.name == default.name else chosen.name
    names = ""
    if config:
        from kmodlab.kernels.fragments import compose

        composition = compose(config, profile.name, series.name)
        if composition.needs_build and flavour_field:
            raise ConfigError(f"config {composition.label} builds a kernel from Debian's source "
                              f"with kmodlab's own config: a Debian flavour ({flavour_field}) "
                              "does not apply to it")
        if composition.needs_build and not profile.build_kconfig:
            raise ConfigError(f"config {composition.label} builds a kernel from Debian's source, "
                              f"and kmodlab has no kernel build settings for {profile.name} "
                              f"(build_kconfig in its registry file); builds exist for "
                              f"{', '.join(a for a in arch_names() if arch_profile(a).build_kconfig)}")
        if composition.needs_build and series.build_env != "host":
            raise ConfigError(f"config {composition.label} builds a kernel from Debian's source "
                              f"with the host's compiler, but series {series.name} needs its own "
                              f"release's ({series.compiler}, build_env {series.build_env}); "
                              "kernel builds in a release root are not supported yet")
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

    Pairs Debian does not build (the series lists its arches, the flavour its arches and
    series) are left out, not refused: a matrix asks for what exists.  An unknown name is
    still refused.
    """
    table = load_series()
    chosen = table.get_flavour(flavour) if flavour else None
    out = []
    for arch in arches or arch_names():
        name = canonical_arch(arch)
        for kernel in kernels or series_names():
            series = _series_of(table.series_name(str(kernel)), table)
            if not _supported(series.arches, name):
                continue
            if chosen and not (_supported(chosen.arches, name)
                               and _supported(chosen.series, series.name)):
                continue
            out.append(target(arch, str(kernel), flavour))
    return out
