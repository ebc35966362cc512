"""The guest's userland: Debian packages for the guest's arch, downloaded and unpacked.

A private apt configuration (its own sources, lists and cache under
``cache_dir("guest-packages", <debian arch>)``) fetches packages for any arch without touching the
host's apt sources or installing anything; that apt state is deleted once the packages are
unpacked.  The unpacked tree is kept with a manifest of package versions; once it exists it is
reused without apt (a cache hit reads one JSON file), so the image builder can run offline.
``refresh=True`` fetches the newest versions again.

The guest userland comes from Debian 13 (trixie), not the host's bookworm: bookworm's dropbear
2022.83 aborts the whole SSH session after a few dozen channel opens ("Failed assertion
(common-channel.c:705): `!channel->sent_close'", upstream issue #321, fixed in 2024.86), measured
here at about 1 in 50 paramiko exec_command calls.  trixie's 2025.89 ran 500 without a failure.
The initramfs is self-contained (its own libc), so the suite is independent of the kernel's.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import MissingToolError, ProvisionError
from kmodlab.images.elf import resolve_in_root
from kmodlab.paths import atomic_dir, cache_dir, file_lock
from kmodlab.registry.arch import GuestUserland, arch_profile, known_arches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuestArch:
    """A Debian arch and its userland's layout (from the arch's registry entry)."""

    debian_arch: str
    layout: GuestUserland

    @property
    def triplet(self) -> str:
        return self.layout.triplet

    @property
    def loader(self) -> str:
        return self.layout.loader

    @property
    def elf_machine(self) -> int:
        return self.layout.elf_machine

    @property
    def lib_dir(self) -> str:
        return self.layout.lib_dir

    @property
    def search_dirs(self) -> tuple[str, ...]:
        return self.layout.search_dirs


# What the guest runs.  Their shared-library packages are found through Depends (see _lib_deps).
# procps brings vmstat: its ``vmstat -m`` is the slab report the allocator literature quotes, and
# busybox has no vmstat applet.
SEED_PACKAGES: tuple[str, ...] = ("busybox-static", "dropbear-bin", "openssh-sftp-server",
                                  "procps")

# One suite for every guest, whatever the kernel (see the module docstring for why trixie).
DEBIAN_SUITE = "trixie"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
APT_SOURCES: tuple[tuple[str, str], ...] = (
    ("http://deb.debian.org/debian", f"{DEBIAN_SUITE}"),
    ("http://deb.debian.org/debian", f"{DEBIAN_SUITE}-updates"),
    ("http://deb.debian.org/debian-security", f"{DEBIAN_SUITE}-security"),
)

MANIFEST = "manifest.json"


def guest_arch(debian_arch: str) -> GuestArch:
    """The userland facts of the registry arch whose Debian name is ``debian_arch``."""
    for name in known_arches():
        profile = arch_profile(name)
        if profile.debian_arch == debian_arch and profile.guest is not None:
            return GuestArch(debian_arch, profile.guest)
    raise ProvisionError(
        f"no guest userland facts for Debian arch '{debian_arch}'; add a guest: section to its "
        f"file in kmodlab/registry/arches/ (known arches: {', '.join(known_arches())})")


@dataclass(frozen=True)
class Userland:
    """An unpacked set of guest packages (merged into one tree, like an installed system)."""

    arch: GuestArch
    suite: str                   # Debian suite the packages came from
    root: Path
    packages: dict[str, str]     # package name -> exact version

    def path(self, *guest_paths: str) -> Path:
        """Host file for the first of ``guest_paths`` that exists, following symlinks in the tree.

        Several candidates cover both layouts: bookworm packages ship /bin/busybox, merged-/usr
        suites (trixie) /usr/bin/busybox.
        """
        for guest_path in guest_paths:
            found = resolve_in_root(self.root, guest_path)
            if found.is_file():
                return found
        raise ProvisionError(
            f"{' or '.join(guest_paths)} is missing from the guest packages in {self.root}; "
            "delete that directory to download them again"
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the content for the image cache key: arch, suite, every package version."""
        versions = ",".join(f"{k}={v}" for k, v in sorted(self.packages.items()))
        return f"{self.arch.debian_arch}:{self.suite}:{versions}"


def ensure_userland(debian_arch: str, *, refresh: bool = False) -> Userland:
    """The unpacked guest packages for ``debian_arch``, downloading them on first use."""
    arch = guest_arch(debian_arch)
    base = cache_dir("guest-packages", debian_arch)
    final = base / DEBIAN_SUITE
    if not refresh and _current(final):
        return _load(arch, final)
    with file_lock(base / ".lock"):
        if not refresh and _current(final):   # another process just built it
            return _load(arch, final)
        apt = PrivateApt(base / f"apt-{DEBIAN_SUITE}", debian_arch)
        apt.update()
        stanzas = apt.closure(SEED_PACKAGES)
        with atomic_dir(final) as tmp:
            debs = apt.download({name: s["Version"] for name, s in stanzas.items()}, tmp / "debs")
            root = tmp / "root"
            root.mkdir()
            for deb in debs:
                _run(["dpkg-deb", "-x", str(deb), str(root)], "dpkg-deb", "dpkg",
                     hint=f"{deb} may be damaged; delete {base} to download it again.")
            packages = {name: s["Version"] for name, s in sorted(stanzas.items())}
            (tmp / MANIFEST).write_text(json.dumps(
                {"debian_arch": debian_arch, "suite": DEBIAN_SUITE, "seeds": list(SEED_PACKAGES),
                 "packages": packages},
                indent=2, sort_keys=True))
        # The lists and pkgcache (~100 MB) are only needed to build the tree again, and a
        # rebuild runs apt-get update first anyway.
        shutil.rmtree(apt.dir, ignore_errors=True)
        return _load(arch, final)


def _current(final: Path) -> bool:
    """True when an unpacked userland exists and was made from today's package list."""
    try:
        data = json.loads((final / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return data.get("seeds") == list(SEED_PACKAGES)


def _load(arch: GuestArch, final: Path) -> Userland:
    data = json.loads((final / MANIFEST).read_text())
    return Userland(arch=arch, suite=data["suite"], root=final / "root",
                    packages=dict(data["packages"]))


class PrivateApt:
    """apt-get/apt-cache pointed at lists and caches of our own, for one Debian arch.

    The host's apt.conf.d is still read (proxies, validity settings), but its sources, lists,
    preferences and dpkg status are not.
    """

    def __init__(self, directory: Path, debian_arch: str) -> None:
        self.dir = directory
        self.arch = debian_arch
        for sub in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        if not KEYRING.is_file():
            raise MissingToolError(str(KEYRING), "debian-archive-keyring")
        (directory / "sources.list").write_text("".join(
            f"deb [signed-by={KEYRING}] {uri} {suite} main\n" for uri, suite in APT_SOURCES))
        (directory / "status").touch()

    def options(self) -> list[str]:
        d = self.dir
        settings = {
            "Dir::Etc::sourcelist": d / "sources.list",
            "Dir::Etc::sourceparts": d / "sources.list.d",
            "Dir::Etc::preferences": d / "preferences",
            "Dir::Etc::preferencesparts": d / "preferences.d",
            "Dir::State::Lists": d / "lists",
            "Dir::State::status": d / "status",
            "Dir::Cache": d / "cache",
            "Dir::Cache::pkgcache": d / "cache/pkgcache.bin",
            "Dir::Cache::srcpkgcache": d / "cache/srcpkgcache.bin",
            "APT::Architecture": self.arch,
            "APT::Architectures::": self.arch,
            "APT::Sandbox::User": "root",   # files are written as us, not as _apt
            "Acquire::Languages": "none",
        }
        opts: list[str] = []
        for key, value in settings.items():
            opts += ["-o", f"{key}={value}"]
        return opts

    def update(self) -> None:
        """``apt-get update``.  A mirror mid-sync can serve one suite's list at the wrong size,
        and apt then drops that suite (kmodlab.kernels.apt.IndexFailure): when it is not
        DEBIAN_SUITE itself (trixie-security's i386 list, 2026-12-05), the userland is built
        from the suites that arrived, and the gap is said; anything else is an error."""
        from kmodlab.kernels.apt import parse_update_failures

        argv = ["apt-get", "-q", *self.options(), "update"]
        if shutil.which(argv[0]) is None:
            raise MissingToolError("apt-get", "apt")
        proc = subprocess.run(argv, check=False, capture_output=True, text=True)
        failures = parse_update_failures(proc.stdout + proc.stderr)
        if proc.returncode == 0 and not failures:
            return
        if not failures or any(f.suite == DEBIAN_SUITE for f in failures):
            raise ProvisionError(f"apt-get update ... failed (exit {proc.returncode}):\n"
                                 f"{proc.stderr.strip()[-2000:]}\n{NETWORK_HINT}")
        log.warning("the guest userland for %s is built without %s (the archive did not serve "
                    "it: %s)", self.arch, ", ".join(sorted({f.suite for f in failures})),
                    "; ".join(map(str, failures)))

    def show(self, names: Iterable[str]) -> dict[str, dict[str, str]]:
        """Candidate stanza of each package (Package, Version, Depends...)."""
        names = sorted(set(names))
        out = _run(["apt-cache", *self.options(), "show", "--no-all-versions", *names],
                   "apt-cache", "apt")
        stanzas = {s["Package"]: s for s in parse_stanzas(out)}
        missing = [n for n in names if n not in stanzas]
        if missing:
            raise ProvisionError(f"Debian {DEBIAN_SUITE} has no {self.arch} package {missing}")
        return stanzas

    def closure(self, seeds: Sequence[str]) -> dict[str, dict[str, str]]:
        """``seeds`` plus every shared-library package they (transitively) depend on."""
        result: dict[str, dict[str, str]] = {}
        todo = set(seeds)
        while todo:
            stanzas = self.show(todo)
            result.update(stanzas)
            todo = {dep for s in stanzas.values() for dep in lib_deps(s)} - result.keys()
        return result

    def download(self, versions: dict[str, str], dest: Path) -> list[Path]:
        dest.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", "-q", *self.options(), "download",
              *(f"{name}={version}" for name, version in sorted(versions.items()))],
             "apt-get", "apt", cwd=dest)
        debs = sorted(dest.glob("*.deb"))
        if len(debs) != len(versions):
            raise ProvisionError(f"apt-get download left {len(debs)} .deb files in {dest}, "
                                 f"expected {len(versions)}: {sorted(versions)}")
        return debs


def lib_deps(stanza: dict[str, str]) -> list[str]:
    """Shared-library packages among Depends/Pre-Depends (first of each alternative).

    Debian names library packages lib* (and zlib1g); following only those keeps out the rest of
    a full install (openssh-sftp-server depends on openssh-client, which the guest never runs).
    """
    names = []
    for field in ("Pre-Depends", "Depends"):
        for clause in stanza.get(field, "").split(","):
            first = clause.split("|")[0].strip()
            if not first:
                continue
            name = re.split(r"[\s(:]", first, maxsplit=1)[0]
            if name.startswith(("lib", "zlib")):
                names.append(name)
    return names


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """Parse deb822 stanzas (apt-cache show output); continuation lines are joined."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


NETWORK_HINT = ("Check network access to deb.debian.org; the private apt state is in the "
                "guest-packages cache and can be deleted safely.")


def _run(cmd: list[str], tool: str, package: str, cwd: Path | None = None,
         hint: str = NETWORK_HINT) -> str:
    if shutil.which(cmd[0]) is None:
        raise MissingToolError(tool, package)
    proc = subprocess.run(cmd, cwd=cwd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProvisionError(
            f"{' '.join(cmd[:2])} ... failed (exit {proc.returncode}):\n"
            f"{proc.stderr.strip()[-2000:]}\n{hint}"
        )
    return proc.stdout


def busybox_applets(binary: bytes) -> list[str]:
    """Applet names compiled into a busybox binary, read from its sorted ``applet_names`` table.

    Read from the binary rather than by running ``busybox --list``, which cannot run a foreign-arch
    binary.  The table is NUL-separated and always starts with the ``[`` and ``[[`` applets.
    """
    start = binary.find(b"[\0[[\0")
    while start >= 0:
        end = binary.find(b"\0\0", start)
        names = [n.decode("ascii", "replace") for n in binary[start:end].split(b"\0")]
        if len(names) > 20 and names == sorted(names) and all(
                n.isprintable() and "/" not in n for n in names):
            return [n for n in names if n != "busybox"]
        start = binary.find(b"[\0[[\0", start + 1)
    raise ProvisionError("cannot find the applet table in the busybox binary; "
                         "is it Debian's busybox-static?")
