"""Debian's kernel source (``linux-source-<series>``) in the cache, for kernels kmodlab builds.

The package ships one tarball, ``/usr/src/linux-source-<series>.tar.xz``, holding the source
with Debian's patches applied: the same code as Debian's binary kernels of that version.  It is
fetched with the private apt configuration (never the system's sources) and unpacked once per
package version into ``cache_dir("kernel-sources")/<version>/``; the entry carries a manifest
(kmodlab.manifest) of its key files, so a damaged tree is unpacked again instead of built from.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import ProvisionError
from kmodlab.kernels.apt import (
    FAILED_RETRY_HOURS,
    AptRecord,
    PrivateApt,
    Progress,
    extract_deb,
    first_in_pool,
    require_tool,
)
from kmodlab.kernels.debversion import version_key
from kmodlab.manifest import check_entry, write_manifest
from kmodlab.paths import atomic_dir, cache_dir, entry_lock

log = logging.getLogger("kmodlab.kernels")

TREE = "linux"
"""The unpacked tree's folder inside a source entry."""

KEY_FILES = ("Makefile", "Kconfig", "scripts/kconfig/Makefile", "mm/slub.c", "mm/slab_common.c")


@dataclass(frozen=True)
class KernelSource:
    """One unpacked ``linux-source-<series>`` package version."""

    series: str           # "6.1"
    package: str          # "linux-source-6.1"
    version: str          # Debian package version, "6.1.192-3"
    tree: Path            # the source tree (the kernel's top-level Makefile is here)

    @property
    def kernel_version(self) -> str:
        """What the tree's Makefile says: VERSION.PATCHLEVEL.SUBLEVEL, e.g. ``6.1.192``."""
        fields: dict[str, str] = {}
        for line in (self.tree / "Makefile").read_text(errors="replace").splitlines()[:12]:
            name, sep, value = line.partition("=")
            if sep:
                fields[name.strip()] = value.strip()
        return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"


def source_package(series: str) -> str:
    return f"linux-source-{series}"


def sources_newest_first(apt: PrivateApt, series: str) -> list[AptRecord]:
    """Every ``linux-source-<series>`` in the series' own suites, newest first.  Another
    release's backport of the same source (bullseye-security's ``6.1.180-1~deb11u1``) is not
    the series' source; a ProvisionError names the series Debian does have when it has none."""
    from kmodlab.registry.series import load_series

    suites = set(load_series().get_series(series).suites)
    records = [r for r in apt.madison([source_package(series)]) if r.suite in suites]
    if not records:
        have = sorted(apt.search_names(r"^linux-source-[0-9.]+$"))
        raise ProvisionError(f"Debian's archive has no {source_package(series)} in "
                             f"{', '.join(sorted(suites))}; it has "
                             f"{', '.join(have) or 'no linux-source package'}")
    return sorted(records, key=lambda r: version_key(r.version), reverse=True)


def newest_source(apt: PrivateApt, series: str) -> AptRecord:
    """The newest ``linux-source-<series>`` in the series' suites."""
    return sources_newest_first(apt, series)[0]


def sources_dir() -> Path:
    return cache_dir("kernel-sources")


def source_entry(version: str) -> Path:
    return sources_dir() / version


def load_source(series: str, version: str, *, locked: bool = False) -> KernelSource | None:
    """The unpacked source of ``version`` if its entry is whole, else None (a damaged entry is
    discarded with one warning, so the caller unpacks it again).  ``locked``: the caller holds
    the entry lock."""
    entry = source_entry(version)
    if check_entry(entry, "kernel source", locked=locked,
                   then="it will be unpacked again") is not None:
        return None
    return KernelSource(series, source_package(series), version, entry / TREE)


def fetch_source(apt: PrivateApt, record: AptRecord, series: str,
                 progress: Progress | None = None) -> KernelSource:
    """Download and unpack ``record`` (a linux-source package) into its cache entry."""
    if (cached := load_source(series, record.version)) is not None:
        return cached
    entry = source_entry(record.version)
    with entry_lock(entry):
        if (cached := load_source(series, record.version, locked=True)) is not None:
            return cached
        require_tool("tar", "tar")
        require_tool("xz", "xz-utils")
        with tempfile.TemporaryDirectory(prefix="kml-src-", dir=sources_dir()) as work:
            debs = apt.download([record.download_spec], Path(work) / "debs", progress=progress)
            unpacked = Path(work) / "deb"
            extract_deb(debs[0], unpacked)
            tarballs = sorted((unpacked / "usr" / "src").glob("linux-source-*.tar.*"))
            if not tarballs:
                raise ProvisionError(f"{debs[0].name} holds no usr/src/linux-source-*.tar.*")
            with atomic_dir(entry) as tmp:
                tmp.chmod(0o755)
                if progress:
                    progress(f"unpacking {tarballs[0].name}", None)
                done = subprocess.run(["tar", "-xf", str(tarballs[0]), "-C", str(tmp)],
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise ProvisionError(f"unpacking {tarballs[0].name} failed: "
                                         f"{done.stderr.strip()[-1000:]}")
                [top] = [p for p in tmp.iterdir() if p.is_dir()]
                top.rename(tmp / TREE)
                missing = [k for k in KEY_FILES if not (tmp / TREE / k).is_file()]
                if missing:
                    raise ProvisionError(f"{tarballs[0].name} lacks {', '.join(missing)}: "
                                         "not a kernel source tree")
                # Every file is recorded (deep checks hash them); these are checked on use.
                write_manifest(tmp, key=[f"{TREE}/{k}" for k in KEY_FILES])      # last
    source = load_source(series, record.version)
    if source is None:
        raise ProvisionError(f"the unpacked source of {record.download_spec} did not verify")
    return source


def _pin(series: str) -> Path:
    return sources_dir() / f"series-{series}.json"


def _pinned(series: str) -> KernelSource | None:
    """The version the series resolved to less than the archive's ``refresh_hours`` ago, if it
    is still unpacked: a cached kernel is found without asking apt (~1 s)."""
    from kmodlab.registry.series import load_series

    try:
        pin = json.loads(_pin(series).read_text())
        hours = FAILED_RETRY_HOURS if pin.get("partial") else load_series().archive.refresh_hours
        if time.time() - float(pin["time"]) >= hours * 3600:
            return None
        return load_source(series, str(pin["version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def provision_source(series: str, apt: PrivateApt | None = None,
                     progress: Progress | None = None, *, refresh: bool = False) -> KernelSource:
    """The newest ``linux-source-<series>``, unpacked (from the cache when it is there); the
    newest version is looked up at most every ``refresh_hours`` (or now, with ``refresh``)."""
    from kmodlab.kernels.resolution import default_apt
    from kmodlab.registry.series import load_series

    if not refresh and (pinned := _pinned(series)) is not None:
        return pinned
    apt = apt or default_apt()
    if refresh or not apt.is_fresh():
        apt.update(force=refresh, progress=progress)
    _, source = first_in_pool(sources_newest_first(apt, series),
                              lambda r: fetch_source(apt, r, series, progress),
                              lambda r: f"{r.name} {r.version} ({r.suite})",
                              f"{source_package(series)} versions")
    suites = load_series().get_series(series).suites
    if gaps := apt.missing_lists(suites):
        log.warning("linux-source-%s %s was chosen without lists the archive did not serve (%s):"
                    " a newer one may exist; looked up again in %d minutes", series,
                    source.version, "; ".join(map(str, gaps)), FAILED_RETRY_HOURS * 60)
    tmp = _pin(series).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": source.version, "time": time.time(),
                               "partial": [str(g) for g in gaps]}))
    tmp.replace(_pin(series))
    return source


__all__ = ["KernelSource", "fetch_source", "load_source", "newest_source", "provision_source",
           "source_package", "sources_newest_first"]
