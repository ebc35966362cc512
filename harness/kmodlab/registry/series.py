"""The kernel series table (``series.yaml``): which Debian packages make up a kmodlab kernel.

Per-series and per-flavour differences (suites, ABI shapes, package names) live in the YAML, so a
new series is a data change.  Everything here is pure: no apt, no network.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.errors import ConfigError
from kmodlab.registry.arch import ArchProfile

SERIES_FILE = Path(__file__).resolve().parent / "series.yaml"

# Where Debian's kernel packages put the image, its config and System.map (until 7.2: /boot).
# Paths are relative to the extracted root after /usr/lib/modules is moved to /lib/modules.
DEFAULT_FILES: tuple[tuple[str, str], ...] = (
    ("vmlinuz", "boot/vmlinuz-{release}"),
    ("config", "boot/config-{release}"),
    ("system_map", "boot/System.map-{release}"),
)

# What ``--kernel`` accepts for the newest series of the table.
LATEST = "latest"

_ERE_SPECIAL = set(".[]()*+?{}|^$\\")


def ere_escape(text: str) -> str:
    """Escape ``text`` for a POSIX extended regex (what ``apt-cache search`` speaks).

    ``re.escape`` is not safe here: it escapes ``-`` and others in ways ERE leaves undefined.
    """
    return "".join("\\" + c if c in _ERE_SPECIAL else c for c in text)


@dataclass(frozen=True)
class Flavour:
    name: str
    suffix: str          # template, e.g. "cloud-{kernel_arch}"
    description: str
    arches: tuple[str, ...] = ()   # where Debian builds it (empty: every arch)
    series: tuple[str, ...] = ()   # the series that have it (empty: every series)
    page_size: int = 0             # PAGE_SIZE when not the arch's own (0: the arch's)
    preempt_rt: bool = False       # CONFIG_PREEMPT_RT

    def release_suffix(self, profile: ArchProfile) -> str:
        return self.suffix.format(debian_arch=profile.debian_arch,
                                  kernel_arch=profile.flavour_arch)

    def page_size_on(self, profile: ArchProfile) -> int:
        """PAGE_SIZE of this flavour's kernels on ``profile``'s arch."""
        return self.page_size or profile.page_sizes[0]


@dataclass(frozen=True)
class BuildEnv:
    """A root of another Debian release in which kbuild runs (kmodlab.kernels.build_root)."""

    name: str
    suite: str
    packages: tuple[str, ...]     # templates: {compiler} is the series' compiler


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
    parts: tuple[str, ...] = ()  # more packages of the kernel itself, all needed, kernel's arch
    files: tuple[tuple[str, str], ...] = DEFAULT_FILES   # where the image puts each file
    flavour_headers: tuple[tuple[str, tuple[str, ...]], ...] = ()  # a flavour's own headers
    boot: tuple[str, ...] = ()   # kernel parameters every kernel of the series boots with

    def headers_for(self, flavour: str) -> tuple[str, ...]:
        """The header packages of ``flavour``'s kernels: the series' ``headers``, unless the
        flavour has its own (rt's headers-common tree before 7.x is ``-common-rt``)."""
        return dict(self.flavour_headers).get(flavour, self.headers)

    def file(self, what: str, release: str) -> str:
        """Path (relative to the extracted root) of the kernel's ``vmlinuz``, ``config`` or
        ``system_map``."""
        return dict(self.files)[what].format(release=release)

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
    ignore_valid_until: tuple[str, ...] = ()   # suites whose Release may be past Valid-Until

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
    build_envs: dict[str, BuildEnv] = field(default_factory=dict)
    core_arches: tuple[str, ...] = ()
    core_series: tuple[str, ...] = ()

    def newest_series(self) -> Series:
        """The series ``--kernel latest`` names: the highest version in the table."""
        return max(self.series.values(), key=lambda s: s.version)

    def default_flavour_for(self, profile: ArchProfile) -> Flavour:
        """The arch's own default flavour if its profile names one, else the table's."""
        return self.get_flavour(profile.default_flavour or self.default_flavour)

    def get_build_env(self, name: str) -> BuildEnv | None:
        """None for ``host``; the named root otherwise."""
        if name == "host":
            return None
        try:
            return self.build_envs[name]
        except KeyError:
            raise ConfigError(f"{SERIES_FILE}: build_env {name!r} is not under build_envs: "
                              f"(known: host, {', '.join(self.build_envs)})") from None

    def get_series(self, name: str) -> Series:
        try:
            return self.series[self.series_name(name)]
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

    def series_name(self, name: str) -> str:
        """``latest`` -> the newest series' name; any other name unchanged."""
        return self.newest_series().name if name == LATEST else name

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
            str(name): Flavour(name=str(name), suffix=f["suffix"],
                               description=f.get("description", ""),
                               arches=tuple(f.get("arches") or ()),
                               series=tuple(str(s) for s in f.get("series") or ()),
                               page_size=int(f.get("page_size", 0)),
                               preempt_rt=bool(f.get("preempt_rt", False)))
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
                parts=tuple(s.get("parts") or ()),
                files=tuple({**dict(DEFAULT_FILES), **(s.get("files") or {})}.items()),
                flavour_headers=tuple((str(f), tuple(h)) for f, h in
                                      (s.get("flavour_headers") or {}).items()),
                boot=tuple(str(b) for b in s.get("boot") or ()),
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
            ignore_valid_until=tuple(a.get("ignore_valid_until") or ()),
        )
        build_envs = {
            str(name): BuildEnv(name=str(name), suite=e["suite"], packages=tuple(e["packages"]))
            for name, e in (data.get("build_envs") or {}).items()
        }
        table = SeriesTable(
            default_flavour=data["default_flavour"], flavours=flavours, series=series,
            archive=archive, default_arch=data["default_arch"],
            default_series=str(data["default_series"]), build_envs=build_envs,
            core_arches=tuple((data.get("core") or {}).get("arches") or ()),
            core_series=tuple(str(s) for s in (data.get("core") or {}).get("series") or ()),
        )
    except (KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: malformed series table ({exc!r})") from exc
    table.get_flavour(table.default_flavour)
    table.get_series(table.default_series)
    for s in series.values():
        for suite in s.suites:
            archive.mirror(suite)
        table.get_build_env(s.build_env)
    for env in build_envs.values():
        archive.mirror(env.suite)
    for f in flavours.values():
        unknown = [s for s in f.series if s not in series]
        if unknown:
            raise ConfigError(f"{path}: flavour {f.name} names unknown series {unknown}")
    for name in table.core_series:
        table.get_series(name)
    if LATEST in series:
        raise ConfigError(f"{path}: {LATEST!r} is not a series name (it means the newest)")
    return table
