"""The kernel series table (``series.yaml``): which Debian packages make up a kmodlab kernel.

Per-series and per-flavour differences (suites, ABI shapes, package names) live in the YAML, so a
new series is a data change.  Everything here is pure: no apt, no network.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import ConfigError
from kmodlab.registry.arch import ArchProfile

SERIES_FILE = Path(__file__).resolve().parent / "series.yaml"

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")


def ere_escape(text: str) -> str:
    """Escape ``text`` for a POSIX extended regex (what ``apt-cache search`` speaks).

    ``re.escape`` is not safe here: it escapes ``-`` and others in ways ERE leaves undefined.
    """
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


@dataclass(frozen=True)
class Flavour:
    name: str
    suffix: str          # template, e.g. "cloud-{debian_arch}"
    description: str
    arches: tuple[str, ...] = ()   # where Debian builds it (empty: every arch)

    def release_suffix(self, profile: ArchProfile) -> str:
        return self.suffix.format(debian_arch=profile.debian_arch)


@dataclass(frozen=True)
class Series:
    name: str
    description: str
    suites: tuple[str, ...]
    abi: str                     # ERE/Python regex of the ABI
    image: tuple[str, ...]       # alternatives, first that holds /boot/vmlinuz wins
    headers: tuple[str, ...]     # all needed, kernel's arch (or "all")
    kbuild: tuple[str, ...]      # all needed, host's arch
    arches: tuple[str, ...] = ()  # arches Debian builds it for (empty: every arch)
    compiler: str = "gcc"        # what the headers' kbuild calls
    build_env: str = "host"      # where kbuild runs: "host" or a Debian suite's root

    @property
    def version(self) -> tuple[int, int]:
        """``"6.12"`` -> ``(6, 12)``."""
        major, minor = self.name.split(".")[:2]
        return int(major), int(minor)

    def matches_abi(self, abi: str) -> bool:
        return re.fullmatch(self.abi, abi) is not None


@dataclass(frozen=True)
class Archive:
    keyring: str
    component: str
    mirrors: dict[str, str]
    suites: dict[str, str]       # suite -> mirror key
    refresh_hours: float

    def mirror(self, suite: str) -> str:
        try:
            return self.mirrors[self.suites[suite]]
        except KeyError as exc:
            raise ConfigError(
                f"{SERIES_FILE}: suite {suite!r} has no mirror under archive:"
            ) from exc


@dataclass(frozen=True)
class SeriesTable:
    default_flavour: str
    flavours: dict[str, Flavour]
    series: dict[str, Series]
    archive: Archive
    default_arch: str = "x86_64"
    default_series: str = "6.1"

    def get_series(self, name: str) -> Series:
        try:
            return self.series[name]
        except KeyError:
            raise ConfigError(
                f"unknown kernel series {name!r}; known: {', '.join(self.series)}"
                f" (or give an exact release such as 6.1.0-56 or 6.1.0-56-cloud-amd64)"
            ) from None

    def get_flavour(self, name: str | None) -> Flavour:
        name = name or self.default_flavour
        try:
            return self.flavours[name]
        except KeyError:
            raise ConfigError(
                f"unknown kernel flavour {name!r}; known: {', '.join(self.flavours)}"
            ) from None

    def suites(self) -> list[str]:
        """Every suite any series needs, in first-seen order (the private sources.list)."""
        seen: dict[str, None] = {}
        for s in self.series.values():
            seen.update(dict.fromkeys(s.suites))
        return list(seen)

    def series_of_abi(self, abi: str) -> Series | None:
        return next((s for s in self.series.values() if s.matches_abi(abi)), None)

    def split_release(self, release: str, profile: ArchProfile) -> tuple[str, Flavour] | None:
        """``6.1.0-56-cloud-amd64`` -> (``6.1.0-56``, cloud), if some series knows that ABI.

        The longest flavour suffix is tried first: ``-amd64`` is also a tail of ``-cloud-amd64``.
        """
        flavours = sorted(self.flavours.values(), key=lambda f: -len(f.release_suffix(profile)))
        for flavour in flavours:
            tail = "-" + flavour.release_suffix(profile)
            if release.endswith(tail):
                abi = release[: -len(tail)]
                if self.series_of_abi(abi):
                    return abi, flavour
        return None


def release_name(abi: str, flavour: Flavour, profile: ArchProfile) -> str:
    return f"{abi}-{flavour.release_suffix(profile)}"


def package_name(template: str, abi: str, release: str) -> str:
    return template.format(abi=abi, release=release)


@functools.cache
def load_series(path: Path = SERIES_FILE) -> SeriesTable:
    """Read and check ``series.yaml``; a typo there is reported as a ConfigError naming the file."""
    import yaml  # here, not at the top: kmodlab's parser imports the registry, never reads it

    try:
        data = yaml.safe_load(path.read_text())
        flavours = {
            name: Flavour(name=name, suffix=f["suffix"], description=f.get("description", ""),
                          arches=tuple(f.get("arches") or ()))
            for name, f in data["flavours"].items()
        }
        series = {
            str(name): Series(
                name=str(name),
                description=s.get("description", ""),
                suites=tuple(s["suites"]),
                abi=s["abi"],
                image=tuple(s["image"]),
                headers=tuple(s["headers"]),
                kbuild=tuple(s["kbuild"]),
                arches=tuple(s.get("arches") or ()),
                compiler=s.get("compiler", "gcc"),
                build_env=s.get("build_env", "host"),
            )
            for name, s in data["series"].items()
        }
        a = data["archive"]
        archive = Archive(
            keyring=a["keyring"],
            component=a["component"],
            mirrors=dict(a["mirrors"]),
            suites=dict(a["suites"]),
            refresh_hours=float(a["refresh_hours"]),
        )
        table = SeriesTable(
            default_flavour=data["default_flavour"], flavours=flavours, series=series,
            archive=archive, default_arch=data["default_arch"],
            default_series=str(data["default_series"]),
        )
    except (KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: malformed series table ({exc!r})") from exc
    table.get_flavour(table.default_flavour)
    table.get_series(table.default_series)
    for s in series.values():
        for suite in s.suites:
            archive.mirror(suite)
    return table
