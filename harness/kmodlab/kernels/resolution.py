"""Turn what a user asks for ("6.12", "6.1.0-56", "6.1.0-56-cloud-amd64") into exact packages.

A kernel is only usable if its image, its headers (arch + common) and the host's kbuild of the
*same version* are all still in the archive: Debian keeps old signed images around long after
their headers are gone.  So "newest" means the newest *complete* set, by Debian version order.

The decision (``parse_spec``, ``complete_candidates``, ``choose``) is pure and unit-tested; only
``resolve`` talks to apt.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from kmodlab.errors import ConfigError
from kmodlab.kernels.apt import (
    FAILED_RETRY_HOURS,
    AptRecord,
    PrivateApt,
    Progress,
    host_debian_arch,
)
from kmodlab.kernels.debversion import version_key
from kmodlab.paths import cache_dir
from kmodlab.registry.arch import ArchProfile, arch_profile, known_arches
from kmodlab.registry.series import (
    Flavour,
    Series,
    SeriesTable,
    ere_escape,
    load_series,
    package_name,
    release_name,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """A parsed spec: a series and flavour, and an exact ABI unless "newest" is wanted."""

    profile: ArchProfile
    series: Series
    flavour: Flavour
    abi: str | None = None

    @property
    def release(self) -> str | None:
        return release_name(self.abi, self.flavour, self.profile) if self.abi else None


@dataclass(frozen=True)
class Resolved:
    """One complete, downloadable kernel: the record of what a spec resolved to."""

    arch: str
    series: str
    flavour: str
    abi: str
    release: str
    version: str                       # Debian package version, shared by every package
    suite: str                         # where the image comes from
    images: tuple[AptRecord, ...]      # alternatives: first that ships /boot/vmlinuz wins
    support: tuple[AptRecord, ...] = field(default=())   # headers + kbuild: all needed
    partial: tuple[str, ...] = ()      # lists that failed in the update it was resolved from

    def to_dict(self) -> dict[str, object]:
        def rec(r: AptRecord) -> dict[str, str]:
            return {"name": r.name, "version": r.version, "suite": r.suite}

        return {
            "arch": self.arch, "series": self.series, "flavour": self.flavour, "abi": self.abi,
            "release": self.release, "version": self.version, "suite": self.suite,
            "images": [rec(r) for r in self.images], "support": [rec(r) for r in self.support],
        }


# --------------------------------------------------------------------------- pure: specs


def parse_spec(table: SeriesTable, profile: ArchProfile, spec: str,
               flavour: str | None = None) -> Request:
    """Read a series name (or ``latest``), an ABI or a full release; ConfigError names what
    exists.  No flavour: the arch's default."""
    spec = table.series_name(spec.strip())
    asked = flavour
    flavour = flavour or table.default_flavour_for(profile).name
    if spec in table.series:
        return Request(profile, table.series[spec], table.get_flavour(flavour))
    split = table.split_release(spec, profile)
    if split:
        abi, release_flavour = split
        if asked and asked != release_flavour.name:
            raise ConfigError(
                f"release {spec!r} is the {release_flavour.name!r} flavour, but flavour "
                f"{asked!r} was asked for; drop one of them"
            )
        series = table.series_of_abi(abi)
        assert series is not None      # split_release only accepts ABIs of known series
        return Request(profile, series, release_flavour, abi)
    series = table.series_of_abi(spec)
    if series:
        return Request(profile, series, table.get_flavour(flavour), spec)
    for other in known_arches():
        other_profile = arch_profile(other)
        if other != profile.name and table.split_release(spec, other_profile):
            raise ConfigError(
                f"release {spec!r} is built for {other}, not {profile.name}; "
                f"ask for arch {other!r} or give a release built for {profile.debian_arch}"
            )
    raise ConfigError(
        f"unknown kernel {spec!r} for {profile.name}: give a series "
        f"({', '.join(table.series)}), a Debian ABI (e.g. 6.1.0-56, 6.12.117+deb12) "
        f"or a release (e.g. 6.1.0-56-{table.get_flavour(flavour).release_suffix(profile)})"
    )


# --------------------------------------------------------------------------- pure: names


def _template_pattern(template: str, series: Series, flavour: Flavour, profile: ArchProfile,
                      *, python: bool) -> str:
    """Regex of the package names one template yields for any ABI of ``series``."""
    abi_group = f"(?P<abi>{series.abi})" if python else f"({series.abi})"
    escape = re.escape if python else ere_escape
    marker = "\x00"
    filled = template.format(release=f"{marker}R{marker}", abi=f"{marker}A{marker}")
    out = []
    for i, part in enumerate(filled.split(marker)):
        if i % 2 == 0:
            out.append(escape(part))
        elif part == "R":
            out.append(abi_group + escape("-" + flavour.release_suffix(profile)))
            abi_group = "(?P=abi)" if python else f"({series.abi})"
        else:
            out.append(abi_group)
            abi_group = "(?P=abi)" if python else f"({series.abi})"
    return "".join(out)


def image_search_regex(table: SeriesTable, series: Series, profile: ArchProfile) -> str:
    """One ERE for ``apt-cache search --names-only``: every image package of any flavour."""
    alternatives = [
        _template_pattern(t, series, f, profile, python=False)
        for t in series.image for f in table.flavours.values()
    ]
    return "^(" + "|".join(alternatives) + ")$"


def abis_by_flavour(table: SeriesTable, series: Series, profile: ArchProfile,
                    names: Iterable[str]) -> dict[str, set[str]]:
    """Which ABIs have an image package, per flavour."""
    found: dict[str, set[str]] = {}
    patterns = [
        (f.name, re.compile(_template_pattern(t, series, f, profile, python=True)))
        for t in series.image for f in table.flavours.values()
    ]
    for name in names:
        for flavour_name, pattern in patterns:
            m = pattern.fullmatch(name)
            if m:
                found.setdefault(flavour_name, set()).add(m["abi"])
    return found


def madison_queries(series: Series, flavour: Flavour, profile: ArchProfile, host_arch: str,
                    abi: str) -> list[str]:
    """Names to ask ``apt-cache madison`` about, arch-qualified so foreign packages show up.

    Kernel-side packages are asked for as ``:<kernel arch>`` and ``:all`` (headers-common is
    arch all); kbuild as ``:<host arch>``.
    """
    release = release_name(abi, flavour, profile)
    names = []
    for template in (*series.image, *series.parts, *series.headers_for(flavour.name)):
        name = package_name(template, abi, release)
        names += [f"{name}:{profile.debian_arch}", f"{name}:all"]
    names += [f"{package_name(t, abi, release)}:{host_arch}" for t in series.kbuild]
    return names


# --------------------------------------------------------------------------- pure: choosing


def complete_candidates(series: Series, flavour: Flavour, profile: ArchProfile,
                        abis: Iterable[str], records: Iterable[AptRecord]
                        ) -> tuple[list[Resolved], dict[str, str]]:
    """Every ABI (at its newest complete version), newest first; and why the others are not.

    Only records from the series' own suites count (6.1 must not pick a backport).
    """
    by_name: dict[str, list[AptRecord]] = {}
    for r in records:
        if r.suite in series.suites:
            by_name.setdefault(r.base_name, []).append(r)

    def at(name: str, version: str) -> AptRecord | None:
        return next((r for r in by_name.get(name, []) if r.version == version), None)

    candidates: list[Resolved] = []
    problems: dict[str, str] = {}
    for abi in abis:
        release = release_name(abi, flavour, profile)
        image_names = [package_name(t, abi, release) for t in series.image]
        support_names = [package_name(t, abi, release)
                         for t in (*series.parts, *series.headers_for(flavour.name),
                                   *series.kbuild)]
        versions = {r.version for n in image_names for r in by_name.get(n, [])}
        if not versions:
            problems[abi] = f"no {' or '.join(image_names)} in {', '.join(series.suites)}"
            continue
        for version in sorted(versions, key=version_key, reverse=True):
            images = tuple(r for n in image_names if (r := at(n, version)))
            support = [at(n, version) for n in support_names]
            missing = [n for n, r in zip(support_names, support) if r is None]
            if missing:
                problems.setdefault(
                    abi, f"version {version} lacks {', '.join(missing)} (gone from the archive?)"
                )
                continue
            candidates.append(Resolved(
                arch=profile.name, series=series.name, flavour=flavour.name, abi=abi,
                release=release, version=version, suite=images[0].suite, images=images,
                support=tuple(r for r in support if r is not None),
            ))
            problems.pop(abi, None)
            break
    candidates.sort(key=lambda c: version_key(c.version), reverse=True)
    return candidates, problems


def choose(request: Request, candidates: list[Resolved], problems: dict[str, str],
           flavours_with_images: Iterable[str] = ()) -> Resolved:
    """The exact ABI asked for, or the newest; a ConfigError that says what exists otherwise."""
    where = f"{request.series.name} ({', '.join(request.series.suites)})"
    available = ", ".join(c.release for c in candidates[:8]) or "none"
    if request.abi:
        for c in candidates:
            if c.abi == request.abi:
                return c
        why = problems.get(request.abi, "not in the archive")
        raise ConfigError(
            f"kernel {request.release} is not available complete from Debian's {where}: {why}. "
            f"Available {request.flavour.name} releases (newest first): {available}"
        )
    if candidates:
        return candidates[0]
    others = sorted(set(flavours_with_images) - {request.flavour.name})
    if not problems:
        hint = f"; flavours that exist: {', '.join(others)}" if others else ""
        raise ConfigError(
            f"Debian has no {request.flavour.name} kernel for {request.profile.name} in series "
            f"{where}{hint}"
        )
    detail = "; ".join(f"{abi}: {why}" for abi, why in sorted(problems.items()))
    raise ConfigError(
        f"no complete {request.flavour.name} kernel for {request.profile.name} in series {where} "
        f"(image + headers + kbuild of one version): {detail}"
    )


# --------------------------------------------------------------------------- with apt


@functools.cache
def _host_arch() -> str:
    return host_debian_arch()


def default_apt(arch: str | None = None) -> PrivateApt:
    """The private apt for one arch's kernels, in ``cache_dir("apt", <Debian arch>)``: that
    arch's lists and the host's (kbuild's programs run on the host); None: the host's alone
    (linux-source, which is arch-independent).

    One root per arch because apt keeps a suite's new lists only when every one of them
    arrives: while the mirror served bookworm-security's i386 list at the wrong size, one apt
    for all arches lost that suite for amd64 and arm64 too, and x86_64 6.12 resolved to an
    older backport instead of bookworm-security's newer kernel."""
    host = _host_arch()
    debian = arch_profile(arch).debian_arch if arch else host
    return PrivateApt(cache_dir("apt", debian), load_series(), [debian], host)


def resolve(arch: str, spec: str | None = None, flavour: str | None = None, *,
            refresh: bool = False, apt: PrivateApt | None = None,
            progress: Progress | None = None) -> Resolved:
    """Resolve a series/ABI/release to the exact packages to download.

    Refreshes the private package lists when they are older than ``refresh_hours`` (or when
    ``refresh``), so this needs the network at most once a day.
    """
    return resolve_newest_first(arch, spec, flavour, refresh=refresh, apt=apt,
                                progress=progress)[0]


def resolve_newest_first(arch: str, spec: str | None = None, flavour: str | None = None, *,
                         refresh: bool = False, apt: PrivateApt | None = None,
                         progress: Progress | None = None) -> list[Resolved]:
    """Every complete kernel a spec may mean, newest first: the exact one for an ABI or a
    release, every ABI of the series for a series (the next is the fallback when the archive's
    pool lacks the files its index lists)."""
    table = load_series()
    profile = arch_profile(arch)
    request = parse_spec(table, profile, spec or table.default_series, flavour)
    apt = apt or default_apt(profile.name)
    apt.update(force=refresh, progress=progress)
    missing = tuple(str(f) for f in apt.missing_lists(request.series.suites))
    if missing:
        log.warning("%s %s (%s) is resolved without lists the archive did not serve (%s): a "
                    "newer kernel may exist; what is chosen is pinned for %d minutes only",
                    profile.name, request.series.name, request.flavour.name, "; ".join(missing),
                    FAILED_RETRY_HOURS * 60)
    return [replace(r, partial=missing) for r in _resolve_with(
        apt, table, profile, request)]


def _resolve_with(apt: PrivateApt, table: SeriesTable, profile: ArchProfile,
                  request: Request) -> list[Resolved]:
    names = apt.search_names(image_search_regex(table, request.series, profile))
    found = abis_by_flavour(table, request.series, profile, names)
    abis = found.get(request.flavour.name, set())
    if request.abi:
        abis = abis & {request.abi} or {request.abi}
    records = apt.madison(
        q for abi in abis
        for q in madison_queries(request.series, request.flavour, profile, apt.host_arch, abi)
    )
    candidates, problems = complete_candidates(
        request.series, request.flavour, profile, abis, records
    )
    if not request.abi and candidates:
        return candidates
    if request.abi and not candidates:
        # Say what *is* available, not just that this one is not.
        others = found.get(request.flavour.name, set()) - {request.abi}
        records = apt.madison(
            q for abi in others
            for q in madison_queries(request.series, request.flavour, profile, apt.host_arch, abi)
        )
        candidates, _ = complete_candidates(
            request.series, request.flavour, profile, others, records
        )
    return [choose(request, candidates, problems, found)]
