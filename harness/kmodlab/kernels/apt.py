"""A private apt in the cache: kmodlab's own sources, lists and download cache.

Why private: the system's lists hold neither arm64 nor bookworm-backports, and kmodlab must never
touch the system's apt state.  Every command runs with ``APT_CONFIG`` pointing at our own apt.conf,
which also shuts out ``/etc/apt/apt.conf.d`` (hooks, extra index targets), plus explicit ``-o``
options for every directory apt would otherwise take from the system.

Parsing of apt's output is pure (``parse_*``) so it is unit-tested without network.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kmodlab.errors import MissingToolError, ProvisionError
from kmodlab.registry.series import SeriesTable

log = logging.getLogger(__name__)

C = TypeVar("C")
R = TypeVar("R")

FAILED_RETRY_HOURS = 0.25
"""How long lists with a failed index count as fresh before the update is tried again."""

Progress = Callable[[str, float | None], None]
"""progress(message, fraction 0..1 or None when unknown)."""

_TOOLS = {"apt-get": "apt", "apt-cache": "apt", "dpkg": "dpkg", "dpkg-deb": "dpkg"}


def require_tool(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        raise MissingToolError(tool, package)
    return path


def host_debian_arch() -> str:
    """The host's dpkg architecture: kbuild's helper binaries must run here."""
    require_tool("dpkg", "dpkg")
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


# --------------------------------------------------------------------------- pure parsing


@dataclass(frozen=True)
class AptRecord:
    """One line of ``apt-cache madison``: a package version available from one suite."""

    name: str          # apt's own designation: "pkg" (native or all) or "pkg:arm64" (foreign)
    version: str
    suite: str         # e.g. "bookworm-security"
    index_arch: str    # the Packages index it came from (for arch-all packages, either arch)

    @property
    def base_name(self) -> str:
        return self.name.partition(":")[0]

    @property
    def download_spec(self) -> str:
        """What ``apt-get download`` needs to fetch exactly this one: ``pkg[:arch]=version``."""
        return f"{self.name}={self.version}"


_MADISON = re.compile(
    r"^\s*(?P<name>\S+)\s*\|\s*(?P<version>\S+)\s*\|\s*(?P<uri>\S+)\s+(?P<suite>[^/\s]+)"
    r"(?:/(?P<component>\S+))?\s+(?P<arch>\S+)\s+Packages\s*$"
)


def parse_madison(text: str) -> list[AptRecord]:
    """Parse ``apt-cache madison`` output; source-package lines and noise are skipped.

    Arch-all packages are listed once per index; they are deduplicated here.
    """
    records: dict[tuple[str, str], AptRecord] = {}
    for line in text.splitlines():
        m = _MADISON.match(line)
        if not m:
            continue
        rec = AptRecord(m["name"], m["version"], m["suite"], m["arch"])
        records.setdefault((rec.name, rec.version + "@" + rec.suite), rec)
    return list(records.values())


def parse_search(text: str) -> list[str]:
    """Package names from ``apt-cache search`` (``name - description`` lines)."""
    names = []
    for line in text.splitlines():
        name, sep, _ = line.partition(" - ")
        if sep and name.strip():
            names.append(name.strip())
    return sorted(set(names))


def parse_dlstatus(line: str) -> tuple[float, str] | None:
    """``dlstatus:2:25.40:Retrieving file 2 of 4`` -> (0.254, "Retrieving file 2 of 4")."""
    parts = line.strip().split(":", 3)
    if len(parts) == 4 and parts[0] == "dlstatus":
        try:
            return min(max(float(parts[2]) / 100.0, 0.0), 1.0), parts[3]
        except ValueError:
            return None
    return None


def sources_list(table: SeriesTable, arches: Sequence[str]) -> str:
    """One-line-style sources for every suite any series needs, restricted to ``arches``."""
    a = table.archive

    def opts(suite: str) -> str:
        stale = " check-valid-until=no" if suite in a.ignore_valid_until else ""
        return f"[arch={','.join(arches)} signed-by={a.keyring}{stale}]"

    return "".join(
        f"deb {opts(suite)} {a.mirror(suite)} {suite} {a.component}\n" for suite in table.suites()
    )


@dataclass(frozen=True)
class IndexFailure:
    """One package list ``apt-get update`` could not fetch (``arch`` None: the suite's Release
    file).  apt updates a suite as one transaction: when one of its lists fails, it drops the
    suite's new lists for every arch (bookworm-security's i386 list failing left no amd64 list
    of that suite either, measured 2026-12-05), so a failure covers the whole suite."""

    suite: str
    arch: str | None
    reason: str

    def covers(self, suite: str) -> bool:
        return self.suite == suite

    def __str__(self) -> str:
        what = f"{self.suite} {self.arch} package list" if self.arch else f"{self.suite} Release"
        return f"{what}: {self.reason}"


_ERR = re.compile(r"^Err:\d+\s+\S+\s+(?P<what>.+?)\s*$")


def parse_update_failures(output: str) -> list[IndexFailure]:
    """The lists an ``apt-get update`` run failed to fetch, from its ``Err:`` lines:
    ``Err:20 http://… bookworm-security/main i386 Packages`` and the indented reason after it
    (``File has unexpected size … Mirror sync in progress?``)."""
    lines = output.splitlines()
    failures = []
    for i, line in enumerate(lines):
        m = _ERR.match(line)
        if not m:
            continue
        words = m["what"].split()
        suite = words[0].split("/", 1)[0]
        arch = words[1] if len(words) >= 3 and words[-1] == "Packages" else None
        follows = lines[i + 1] if i + 1 < len(lines) else ""
        reason = follows.strip() if follows[:1].isspace() and follows.strip() else "no reason given"
        failures.append(IndexFailure(suite, arch, reason))
    return list(dict.fromkeys(failures))


# --------------------------------------------------------------------------- the private apt


class PrivateApt:
    """apt-get/apt-cache confined to ``root`` (normally ``cache_dir("apt", <Debian arch>)``)."""

    def __init__(self, root: Path, table: SeriesTable, arches: Sequence[str], host_arch: str):
        self.root = root
        self.table = table
        self.host_arch = host_arch
        self.arches = list(dict.fromkeys([host_arch, *arches]))
        self.sources = root / "sources.list"
        self.lists = root / "lists"
        self.cache = root / "cache"
        self.status = root / "status"
        self.conf = root / "apt.conf"
        self.stamp = root / "updated.json"
        self._lock = root / "lock"

    # ---- configuration

    def options(self) -> list[str]:
        opts = {
            "Dir::Etc::sourcelist": str(self.sources),
            "Dir::Etc::sourceparts": "-",
            "Dir::State::Lists": str(self.lists),
            "Dir::Cache": str(self.cache),
            "Dir::State::status": str(self.status),
            "APT::Architecture": self.host_arch,
        }
        pairs = [f"{k}={v}" for k, v in opts.items()]
        pairs += [f"APT::Architectures::={a}" for a in self.arches]
        if os.geteuid() == 0:
            # The _apt sandbox user cannot enter ~root/.cache; apt would warn and go on as root.
            pairs.append("APT::Sandbox::User=root")
        return [arg for pair in pairs for arg in ("-o", pair)]

    def _apt_conf_text(self) -> str:
        empty = self.root / "empty.d"
        return (
            "// Written by kmodlab: keep the system's apt.conf.d and preferences out.\n"
            f'Dir::Etc::main "/dev/null";\n'
            f'Dir::Etc::parts "{empty}";\n'
            f'Dir::Etc::preferences "/dev/null";\n'
            f'Dir::Etc::preferencesparts "{empty}";\n'
            'Acquire::Languages "none";\n'
            'Acquire::GzipIndexes "true";\n'
            'Dir::Cache::srcpkgcache "";\n'
        )

    def ensure_config(self) -> None:
        dirs = (self.lists / "partial", self.cache / "archives" / "partial", self.root / "empty.d")
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        self.status.touch(exist_ok=True)
        _write_if_changed(self.conf, self._apt_conf_text())
        _write_if_changed(self.sources, sources_list(self.table, self.arches))

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(APT_CONFIG=str(self.conf), LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
        return env

    def _run(self, tool: str, args: Sequence[str], *, cwd: Path | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        require_tool(tool, _TOOLS[tool])
        self.ensure_config()      # never let apt fall back to the system's config
        argv = [tool, *self.options(), *args]
        proc = subprocess.run(argv, capture_output=True, check=False, text=True, env=self._env(),
                              cwd=cwd)
        if check and proc.returncode != 0:
            raise ProvisionError(_apt_failure(argv, proc.returncode, proc.stdout + proc.stderr))
        return proc

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise our own apt runs (parallel test workers share one cache)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ---- lists

    def _sources_digest(self) -> str:
        return hashlib.sha256(sources_list(self.table, self.arches).encode()).hexdigest()

    def lists_age_hours(self) -> float | None:
        """Hours since the last successful update with today's sources, None if never."""
        try:
            stamp = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return None
        if stamp.get("sources") != self._sources_digest():
            return None
        return max(0.0, (time.time() - float(stamp["time"])) / 3600.0)

    def is_fresh(self) -> bool:
        """Lists younger than ``refresh_hours``; lists with a failed index only for
        ``FAILED_RETRY_HOURS`` (a mirror mid-sync usually settles within minutes)."""
        age = self.lists_age_hours()
        limit = FAILED_RETRY_HOURS if self.failed_indexes() else self.table.archive.refresh_hours
        return age is not None and age < limit

    def failed_indexes(self) -> list[IndexFailure]:
        """The lists the last update could not fetch (recorded in its stamp)."""
        try:
            stamp = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return []
        return [IndexFailure(*f) for f in stamp.get("failed", [])]

    def missing_lists(self, suites: Iterable[str]) -> list[IndexFailure]:
        """The failures of the last update that left one of ``suites`` without lists."""
        wanted = list(suites)
        return [f for f in self.failed_indexes() if any(f.covers(s) for s in wanted)]

    def update(self, *, force: bool = False, progress: Progress | None = None) -> bool:
        """``apt-get update`` if forced or the lists are older than ``refresh_hours``.

        Returns True if it ran.  When only some lists fail (a mirror mid-sync serves one
        ``Packages`` file of the wrong size), the other suites are kept and the failures
        recorded: ``missing_lists`` names them to the kernels that need one (resolution says so
        and pins what it chose for FAILED_RETRY_HOURS only), and the update is tried again after
        ``FAILED_RETRY_HOURS``.  When nothing could be fetched, or apt failed for a reason it
        does not pin on a list, this raises: resolving against stale or partial lists would pick
        the wrong kernel.
        """
        with self.locked():
            if not force and self.is_fresh():
                return False
            self.ensure_config()
            if progress:
                progress(f"updating package lists ({'+'.join(self.arches)}, private to kmodlab)",
                         None)
            proc = self._run("apt-get", ["-q", "-o", "Acquire::Retries=2", "update"], check=False)
            output = proc.stdout + proc.stderr
            failures = parse_update_failures(output)
            failed = re.search(r"^(W|E): (Failed|Some index)", output, re.MULTILINE)
            if (proc.returncode != 0 or failed) and not self._only_some_lists_failed(
                    failures, output):
                raise ProvisionError(
                    _apt_failure(["apt-get", "update"], proc.returncode, output)
                    + "\nCheck the network (the Debian archive must be reachable), then retry."
                )
            for f in failures:
                log.warning("the archive did not serve the %s; apt leaves %s without lists "
                            "until an update gets all of them (tried again after %d minutes)",
                            f, f.suite, FAILED_RETRY_HOURS * 60)
            stamp = {"time": time.time(), "sources": self._sources_digest(),
                     "failed": [[f.suite, f.arch, f.reason] for f in failures]}
            self.stamp.write_text(json.dumps(stamp))
            return True

    def _only_some_lists_failed(self, failures: list[IndexFailure], output: str) -> bool:
        """apt failed only on lists it named, and at least one suite's lists all arrived."""
        if not failures:
            return False
        for line in output.splitlines():    # every E:/W: line is about a named list
            if line.startswith(("E: ", "W: ")) and not (
                    "Some index files failed" in line
                    or any(f"/{f.suite}/" in line or f" {f.suite} " in line for f in failures)):
                return False
        return any(not any(f.suite == suite for f in failures) for suite in self.table.suites())

    # ---- queries

    def search_names(self, ere: str) -> list[str]:
        return parse_search(self._run("apt-cache", ["search", "--names-only", ere]).stdout)

    def madison(self, names: Iterable[str]) -> list[AptRecord]:
        names = list(dict.fromkeys(names))
        if not names:
            return []
        return parse_madison(self._run("apt-cache", ["madison", *names]).stdout)

    # ---- downloads

    def download(self, specs: Sequence[str], dest: Path, *,
                 progress: Progress | None = None) -> list[Path]:
        """``apt-get download`` exact ``pkg[:arch]=version`` specs into ``dest``; returns the .debs.

        apt checks every file against the signed index; progress comes from APT::Status-Fd.
        """
        require_tool("apt-get", "apt")
        self.ensure_config()
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        read_fd, write_fd = os.pipe()
        argv = ["apt-get", *self.options(), "-o", f"APT::Status-Fd={write_fd}", "-q", "download",
                *specs]
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(argv, cwd=dest, env=self._env(), stdout=out,
                                    stderr=subprocess.STDOUT, text=True, pass_fds=(write_fd,))
            os.close(write_fd)
            with os.fdopen(read_fd) as status:
                for line in status:
                    parsed = parse_dlstatus(line)
                    if parsed and progress:
                        progress(f"downloading {len(specs)} packages: {parsed[1]}", parsed[0])
            rc = proc.wait()
            out.seek(0)
            output = out.read()
        if rc != 0:
            missing = missing_from_pool(output)
            if missing:
                raise NotInPool(missing, _apt_failure(argv, rc, output))
            raise ProvisionError(_apt_failure(argv, rc, output))
        got = sorted(set(dest.glob("*.deb")) - before)
        if len(got) != len(specs):
            raise ProvisionError(
                f"apt-get download fetched {len(got)} files for {len(specs)} packages in {dest}:\n"
                + output[-2000:]
            )
        return got


def extract_deb(deb: Path, root: Path) -> None:
    """Unpack a .deb's files under ``root`` (no maintainer scripts run: nothing is installed)."""
    require_tool("dpkg-deb", "dpkg")
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True,
                          check=False, text=True)
    if proc.returncode != 0:
        raise ProvisionError(f"dpkg-deb -x {deb.name} failed: {proc.stderr.strip()}")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


class NotInPool(ProvisionError):
    """The signed index lists these package files, but the archive answers 404 for them (seen
    for bullseye-security's newest 5.10 images on arm64 and i386): an older release may still
    download."""

    def __init__(self, files: list[str], message: str):
        super().__init__(message)
        self.files = files


def first_in_pool(candidates: Iterable[C], fetch: Callable[[C], R], label: Callable[[C], str],
                  what: str) -> tuple[C, R]:
    """The first of ``candidates`` (newest first) whose files the archive's pool really
    serves, with what ``fetch`` made of it.  The archive as reached here lists some versions in
    its signed index and answers 404 for their files (bullseye-security's 5.10.0-46 on arm64
    and i386): those are skipped and the fallback is said, never silent; when none downloads,
    one ProvisionError names them all.  ``what`` names the candidates ("kernels")."""
    skipped: list[str] = []
    for candidate in candidates:
        try:
            result = fetch(candidate)
        except NotInPool as exc:
            skipped.append(f"{label(candidate)}: {', '.join(exc.files)}")
            continue
        if skipped:
            log.warning("the archive lists newer %s than it serves: %s answered 404 (listed in "
                        "the signed index, missing from the pool); using %s, the newest that "
                        "downloads", what, "; ".join(skipped), label(candidate))
        return candidate, result
    raise ProvisionError(f"no {what} could be downloaded; the archive's pool lacks the files its "
                         "index lists for every one: " + "; ".join(skipped))


_NOT_FOUND = re.compile(r"^E: Failed to fetch \S+/(?P<file>[^/\s]+\.deb)\s+404\b", re.MULTILINE)


def missing_from_pool(output: str) -> list[str]:
    """The .deb files apt-get reported as 404 Not Found (network errors are not listed)."""
    return [m["file"] for m in _NOT_FOUND.finditer(output)]


def _apt_failure(argv: Sequence[str], rc: int, output: str) -> str:
    tail = "\n".join(output.strip().splitlines()[-15:])
    shown = " ".join(a for i, a in enumerate(argv)
                     if a != "-o" and (i == 0 or argv[i - 1] != "-o"))
    return f"{shown} failed (exit {rc}):\n{tail}"
