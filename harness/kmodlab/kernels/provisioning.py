"""Provision kernels into the cache: download, extract, fix up, and describe them in kernel.json.

Cache layout (``cache_dir("kernels")``)::

    <release>/integrity.json    size + sha256 of every file (kmodlab.manifest), written last
    <release>/kernel.json       the Kernel description (paths to everything below)
    <release>/resolved.json     which packages (name, version, suite) the entry was built from
    <release>/vmlinux           x86: the ELF inside the bzImage, for PVH direct boot
    <release>/root/...          the extracted .debs: boot/, lib/modules/<release>/, usr/src/,
                                usr/lib/linux-kbuild-*/
    series/<arch>-<series>-<flavour>.json   the newest release a series resolved to, and when
    custom-<arch>-<release>-<id>/           entries for users' own kernels (custom_kernel)

Entries are built in a temporary sibling and renamed into place (``paths.atomic_dir``), under a
per-release lock, so an interrupted or concurrent provision never leaves a half entry.

Integrity: :func:`load_kernel` checks the key files (kernel.json, the boot image, vmlinux,
config, System.map, modules.dep, the headers' Makefile, .config, Module.symvers, fixdep,
modpost...) against the entry's manifest on every use: sizes, and hashes of the small ones.
A damaged entry is discarded with one warning, and :func:`provision` fetches it again.
:func:`fetch` (``kmodlab kernels fetch``) checks every file's size (``deep``: every hash) and
repairs a damaged entry by provisioning it again.

Entries written before manifests existed are *verified and adopted*, not re-downloaded: under
the entry lock, kernel.json must load, every path it names must exist, the boot image must be
non-empty and the headers tree must pass ``check_headers_tree``; then the manifest is written
from the files as they are.  One that fails is discarded and fetched again.  An entry that had
a manifest once (``.locks/<name>.sealed``, outside the entry, says so) and lost it is damaged,
never adopted: a half-finished ``rm -rf`` must not be blessed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import struct
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab.errors import ConfigError, KmodlabError, ProvisionError
from kmodlab.kernels.apt import (
    FAILED_RETRY_HOURS,
    AptRecord,
    PrivateApt,
    Progress,
    extract_deb,
    first_in_pool,
)
from kmodlab.kernels.debversion import version_key
from kmodlab.kernels.headers import check_headers_tree, fix_tree, run_depmod
from kmodlab.kernels.kernel import MANIFEST, Kernel
from kmodlab.kernels.progress import progress_reporter
from kmodlab.kernels.resolution import (
    Resolved,
    default_apt,
    parse_spec,
    resolve,
    resolve_newest_first,
)
from kmodlab.kernels.vmlinux import extract_vmlinux
from kmodlab.manifest import ABSENT, check_entry, read_manifest, verify, write_manifest
from kmodlab.paths import atomic_dir, cache_dir, entry_lock
from kmodlab.registry.arch import ArchProfile, arch_profile, known_arches
from kmodlab.registry.series import load_series

if TYPE_CHECKING:
    from kmodlab.registry.target import Target

log = logging.getLogger("kmodlab.kernels")

RESOLVED = "resolved.json"

# Arch profiles whose boot_image is this want the ELF vmlinux cut out of the bzImage.
PVH_BOOT_IMAGE = "vmlinux-pvh"


# --------------------------------------------------------------------------- cache entries


def kernels_dir() -> Path:
    return cache_dir("kernels")


def _read_kernel(entry: Path) -> Kernel | None:
    try:
        return Kernel.from_json((entry / MANIFEST).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None


_discarded: dict[Path, str] = {}
"""Entries load_kernel found damaged (and discarded) in this process: fetch() reports them."""


def load_kernel(entry: Path, *, locked: bool = False) -> Kernel | None:
    """The Kernel in a cache entry, or None if the entry is absent or damaged.

    Checks the entry's key files against its manifest (see the module docstring); a damaged
    entry is discarded (one warning) so that the next provision fetches it again; an entry from
    before manifests is adopted if it passes the structural checks.  ``locked``: the caller
    holds the entry lock.
    """
    reason = check_entry(entry, "kernel", locked=locked, adopt=_adopt,
                         then="it will be fetched again")
    if reason is not None:
        if reason != ABSENT:
            _discarded[entry] = reason
        return None
    if not _sealed_marker(entry).exists():      # sealed before the marker was written
        with contextlib.suppress(OSError):      # a read-only cache is fine
            _mark_sealed(entry)
    kernel = _read_kernel(entry)
    # A custom kernel's image is the user's own file, outside the entry.
    return kernel if kernel is not None and kernel.image.exists() else None


def _key_files(kernel: Kernel) -> list[Path]:
    """What load_kernel checks on every use (paths under kernel.root; others are skipped)."""
    headers = kernel.headers_dir
    return [kernel.root / MANIFEST, kernel.root / RESOLVED, kernel.image, kernel.config,
            kernel.system_map, kernel.modules_dir / "modules.dep",
            *([kernel.vmlinux] if kernel.vmlinux else []),
            *(headers / name for name in ("Makefile", ".config", "Module.symvers",
                                          "include/generated/autoconf.h",
                                          "include/config/auto.conf",
                                          "include/config/kernel.release",
                                          "scripts/basic/fixdep", "scripts/mod/modpost"))]


def _in_entry(kernel: Kernel, entry: Path, paths: list[Path]) -> list[Path]:
    """``paths`` (under kernel.root) that exist, re-rooted at ``entry`` (a temp folder that will
    become kernel.root, or kernel.root itself)."""
    out = []
    for path in paths:
        try:
            rel = path.relative_to(kernel.root)
        except ValueError:
            continue
        if (entry / rel).exists():
            out.append(entry / rel)
    return out


def _seal(entry: Path, kernel: Kernel) -> None:
    """Write the entry's integrity manifest: every file, with the key files marked.  Last."""
    write_manifest(entry, key=_in_entry(kernel, entry, _key_files(kernel)))


def _sealed_marker(final: Path) -> Path:
    """Exists once ``final`` has had a manifest; outside the entry, so deleting it spares this."""
    return final.parent / ".locks" / f"{final.name}.sealed"


def _mark_sealed(final: Path) -> None:
    _sealed_marker(final).parent.mkdir(parents=True, exist_ok=True)
    _sealed_marker(final).touch()


def _adopt(entry: Path) -> bool:
    """An entry written before manifests: verify its structure, and if it holds, give it a
    manifest (the module docstring says what is checked).  Called under the entry lock."""
    kernel = _read_kernel(entry)
    if kernel is None or kernel.root != entry or _sealed_marker(entry).exists():
        return False
    needed = [kernel.image, kernel.config, kernel.modules_dir / "modules.dep"]
    needed += [kernel.vmlinux] if kernel.vmlinux else []
    needed += [] if kernel.series == "custom" else [entry / RESOLVED, kernel.system_map]
    if not all(p.exists() for p in needed) or not kernel.boot_image.stat().st_size:
        return False
    if kernel.series != "custom":
        try:
            check_headers_tree(kernel.headers_dir)
        except ProvisionError:
            return False
    _seal(entry, kernel)
    _mark_sealed(entry)
    log.info("kernel %s: verified an entry written before integrity manifests; adopted it",
             entry)
    return True


def cached_kernels() -> list[Kernel]:
    """Every complete entry in the cache (Debian and custom kernels)."""
    found = (load_kernel(p.parent) for p in sorted(kernels_dir().glob(f"*/{MANIFEST}")))
    return [k for k in found if k is not None]


def _pin_path(arch: str, series: str, flavour: str) -> Path:
    return cache_dir("kernels", "series") / f"{arch}-{series}-{flavour}.json"


def _read_pin(arch: str, series: str, flavour: str, max_age_hours: float) -> str | None:
    """The release a series resolved to, if that was less than ``max_age_hours`` ago (less
    than FAILED_RETRY_HOURS for one resolved from partial lists)."""
    try:
        pin = json.loads(_pin_path(arch, series, flavour).read_text())
        if pin.get("partial"):
            max_age_hours = min(max_age_hours, FAILED_RETRY_HOURS)
        fresh = time.time() - float(pin["time"]) < max_age_hours * 3600
        return str(pin["release"]) if fresh else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_pin(resolved: Resolved) -> None:
    """Record what the series resolved to.  A resolution from partial lists is recorded too,
    for FAILED_RETRY_HOURS only: unpinned, every command asked apt again (two apt-cache runs,
    ~15 s of CPU with every suite's lists), which made a grading run crawl while a mirror
    was mid-sync."""
    path = _pin_path(resolved.arch, resolved.series, resolved.flavour)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"release": resolved.release, "version": resolved.version,
                               "time": time.time(), "partial": list(resolved.partial)}))
    tmp.rename(path)


def _entry_lock(name: str) -> contextlib.AbstractContextManager[None]:
    """One builder per entry at a time (pytest-xdist workers share the cache)."""
    return entry_lock(kernels_dir() / name)


def _remove_stale_partials(final: Path) -> None:
    """Leftovers of a killed build of this entry (we hold its lock, so none is live)."""
    for partial in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)


# --------------------------------------------------------------------------- provision


def provision(arch: str, spec: str | None = None, flavour: str | None = None,
              progress: Progress | None = None, *, refresh: bool = False,
              config: str | tuple[str, ...] | None = None) -> Kernel:
    """A ready Kernel for ``arch``: a series ("6.1", "6.12"), an ABI or an exact release.

    ``spec`` and ``flavour`` default to the registry's (series.yaml).  A cached kernel comes back in
    milliseconds without apt; a series is re-resolved (apt lists refreshed) at most every
    ``refresh_hours``, or now with ``refresh=True``.  Without network, a series falls back to
    the newest cached kernel of that series.

    ``config`` names fragments in kconfig/ (kmodlab.kernels.fragments): fragments with options
    give the kernel built from ``linux-source-<series>`` with them (kmodlab.kernels.kbuild,
    cached; built when missing); boot-only fragments give the Debian kernel with their boot
    parameters.
    """
    if config:
        return _with_config(arch, spec, flavour, config, progress)
    table = load_series()
    profile = arch_profile(arch)
    spec = spec or table.default_series
    request = parse_spec(table, profile, spec, flavour)
    series, flavour_name = request.series.name, request.flavour.name
    if not refresh:
        release = request.release or _read_pin(profile.name, series, flavour_name,
                                               table.archive.refresh_hours)
        if release and (kernel := load_kernel(kernels_dir() / release)):
            return kernel

    title = f"kernel {profile.name} {spec} ({flavour_name})"
    with progress_reporter(progress, title) as report:
        apt = default_apt(profile.name)
        try:
            candidates = resolve_newest_first(profile.name, spec, flavour_name, refresh=refresh,
                                              apt=apt, progress=report)
        except ProvisionError as exc:      # apt could not refresh: offline, mirror down...
            fallback = _newest_cached(profile.name, series, flavour_name, request.release)
            if fallback is None:
                raise
            log.warning("%s\nusing the cached %s instead", exc, fallback.release)
            return fallback
        if request.abi is None and (cached := _newer_cached_than_partial(candidates)):
            return cached
        return _first_downloadable(candidates, apt, report, pin=request.abi is None)


def _newer_cached_than_partial(candidates: list[Resolved]) -> Kernel | None:
    """A cached release of the series newer than what partial lists offer, pinned briefly.

    A suite whose lists failed (a mirror mid-sync) hides its kernels, so partial lists can
    offer an older release than one resolved from whole lists earlier and still cached
    (bookworm-security's 6.1.0-57 hidden, bookworm's 6.1.0-50 offered).  Going back to the
    older one would change the kernel under a user's results for no reason, and download it.
    """
    if not candidates or not candidates[0].partial:
        return None
    offered = candidates[0]
    cached = _newest_cached(offered.arch, offered.series, offered.flavour, None)
    if cached is None or version_key(cached.package_version) <= version_key(offered.version):
        return None
    log.warning("the lists are partial (%s), so they offer %s (%s); the cache holds the newer "
                "%s (%s): using it", "; ".join(offered.partial), offered.release, offered.version,
                cached.release, cached.package_version)
    _write_pin(replace(offered, release=cached.release, version=cached.package_version))
    return cached


def _first_downloadable(candidates: list[Resolved], apt: PrivateApt, report: Progress, *,
                        pin: bool) -> Kernel:
    """The newest candidate whose packages really download (apt.first_in_pool: a release the
    pool answers 404 for is skipped, and the fallback said), from the cache when it is there."""
    def fetch(resolved: Resolved) -> Kernel:
        kernel = load_kernel(kernels_dir() / resolved.release)
        if kernel and kernel.package_version == resolved.version:
            return kernel
        return build_entry(resolved, apt, report)

    resolved, kernel = first_in_pool(
        candidates, fetch, lambda r: f"{r.release} ({r.version}, {r.suite})", "kernels")
    if pin:           # from partial lists only briefly (_read_pin): then it looks again
        _write_pin(resolved)
    return kernel


def _with_config(arch: str, spec: str | None, flavour: str | None,
                 config: str | tuple[str, ...], progress: Progress | None) -> Kernel:
    from dataclasses import replace

    from kmodlab.kernels.fragments import compose
    from kmodlab.registry import target

    chosen = target(arch, spec, flavour, config)
    composition = compose(chosen.config, chosen.arch, chosen.series)
    if composition.needs_build:
        from kmodlab.kernels.kbuild import build_kernel

        return build_kernel(chosen.arch, chosen.series, composition.names, progress=progress)
    stock = provision(chosen.arch, chosen.kernel, chosen.flavour or None, progress)
    return replace(stock, config_names=composition.names, boot_params=composition.boot)


def provision_target(chosen: Target, progress: Progress | None = None) -> Kernel:
    """The kernel of a :class:`kmodlab.registry.Target` (its flavour and config included)."""
    return provision(chosen.arch, chosen.kernel, chosen.flavour or None, progress,
                     config=chosen.config or None)


def _newest_cached(arch: str, series: str, flavour: str, release: str | None) -> Kernel | None:
    matches = [k for k in cached_kernels()
               if k.arch == arch and k.series == series and k.flavour == flavour
               and (release is None or k.release == release)]
    return max(matches, key=lambda k: version_key(k.package_version), default=None)


def build_entry(resolved: Resolved, apt: PrivateApt, progress: Progress) -> Kernel:
    """Download, extract and prepare ``resolved`` into its cache entry; return its Kernel."""
    profile = arch_profile(resolved.arch)
    final = kernels_dir() / resolved.release
    with _entry_lock(resolved.release):
        kernel = load_kernel(final, locked=True)
        if kernel and kernel.package_version == resolved.version:
            return kernel          # another process built it while we waited
        _remove_stale_partials(final)
        started = time.monotonic()
        with atomic_dir(final) as tmp:
            tmp.chmod(0o755)      # mkdtemp makes it private; the cache is for every user
            kernel = _populate(tmp, final, resolved, profile, apt, progress)
            (tmp / RESOLVED).write_text(json.dumps(resolved.to_dict(), indent=2))
            (tmp / MANIFEST).write_text(kernel.to_json())
            _seal(tmp, kernel)                                 # last: marks the entry complete
        _mark_sealed(final)
        log.info("provisioned %s (%s) in %.1f s", resolved.release, resolved.version,
                 time.monotonic() - started)
        return kernel


def _populate(tmp: Path, final: Path, resolved: Resolved, profile: ArchProfile,
              apt: PrivateApt, progress: Progress) -> Kernel:
    release = resolved.release
    series = load_series().get_series(resolved.series)
    root, debs = tmp / "root", tmp / "debs"
    image = root / series.file("vmlinuz", release)

    def fetch(records: list[AptRecord]) -> None:
        files = apt.download([r.download_spec for r in records], debs, progress=progress)
        for i, deb in enumerate(files, 1):
            progress(f"extracting packages: {deb.name}", i / len(files))
            extract_deb(deb, root)
            deb.unlink()
        merge_usr_modules(root, release)

    fetch([resolved.images[0], *resolved.support])
    for alternative in resolved.images[1:]:
        if image.is_file():
            break
        log.info("%s ships no /boot/vmlinuz; trying %s", resolved.images[0].name, alternative.name)
        fetch([alternative])
    if not image.is_file():
        raise ProvisionError(
            f"none of {', '.join(r.name for r in resolved.images)} contains "
            f"/{series.file('vmlinuz', release)}"
        )
    shutil.rmtree(debs, ignore_errors=True)

    progress("fixing up the headers tree", None)
    fix_tree(root)
    headers = root / "usr" / "src" / f"linux-headers-{release}"
    check_headers_tree(headers)
    progress("depmod", None)
    modules = run_depmod(root, release)

    vmlinux = None
    if profile.boot_image == PVH_BOOT_IMAGE:
        progress("extracting vmlinux for PVH boot", None)
        vmlinux = extract_vmlinux(image, tmp / "vmlinux")
        if vmlinux is None:
            log.warning("no ELF vmlinux found in %s; guests boot the bzImage (slower)", image.name)

    def moved(path: Path) -> Path:
        return final / path.relative_to(tmp)

    return Kernel(
        arch=resolved.arch, series=resolved.series, flavour=resolved.flavour, release=release,
        package_version=resolved.version, root=final, image=moved(image),
        vmlinux=moved(vmlinux) if vmlinux else None,
        config=moved(root / series.file("config", release)),
        system_map=moved(root / series.file("system_map", release)),
        modules_dir=moved(modules), headers_dir=moved(headers),
    )


def merge_usr_modules(root: Path, release: str) -> None:
    """Move ``usr/lib/modules/<release>`` to ``lib/modules/<release>``: Debian's packages of
    7.2 install there (merged /usr), earlier ones in ``/lib``; depmod, the initramfs and the
    headers' ``build`` link all read one place."""
    usr = root / "usr" / "lib" / "modules" / release
    if not usr.is_dir() or usr.is_symlink():
        return
    dest = root / "lib" / "modules" / release
    dest.mkdir(parents=True, exist_ok=True)
    for entry in usr.iterdir():
        target = dest / entry.name
        if target.is_dir() and entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(entry)
        else:
            entry.rename(target)
    usr.rmdir()


# --------------------------------------------------------------------------- custom kernels


def _release_from_bzimage(image: Path) -> str | None:
    """x86 boot protocol: kernel_version (0x20E) points at "<release> (builder) #1 ..."."""
    with open(image, "rb") as fh:
        head = fh.read(0x10000)
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    (ptr,) = struct.unpack_from("<H", head, 0x20E)
    start = ptr + 0x200
    if not ptr or start >= len(head):
        return None
    text = head[start:start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return text.split(" ", 1)[0] or None


def _custom_release(image: Path, headers_dir: Path, modules_dir: Path | None) -> str:
    release_file = headers_dir / "include" / "config" / "kernel.release"
    if release_file.is_file():
        return release_file.read_text().strip()
    if modules_dir is not None:
        return modules_dir.name
    from_image = _release_from_bzimage(image)
    if from_image:
        return from_image
    raise ConfigError(
        f"cannot tell the release of {image}: {release_file} is missing; "
        "pass modules_dir=<…/lib/modules/RELEASE> or run 'make modules_prepare' in the tree"
    )


def custom_kernel(arch: str, image: str | Path, headers_dir: str | Path,
                  config: str | Path | None = None,
                  modules_dir: str | Path | None = None) -> Kernel:
    """Wrap a user's own kernel (image + kbuild tree) as a Kernel, with a small cache entry.

    The entry holds the PVH vmlinux (x86) and, when ``modules_dir`` is None, an empty
    lib/modules/<release> with a modules.dep (for a kernel with everything built in).
    """
    profile = arch_profile(arch)
    image = Path(image).expanduser().resolve()
    headers_dir = Path(headers_dir).expanduser().resolve()
    if not image.is_file():
        raise ConfigError(f"kernel image {image} does not exist")
    if not (headers_dir / "Makefile").is_file():
        raise ConfigError(
            f"{headers_dir} is not a kbuild tree (no Makefile): give the kernel build directory "
            "or an installed /usr/src/linux-headers-<release>"
        )
    config_path = Path(config).expanduser().resolve() if config else headers_dir / ".config"
    if not config_path.is_file():
        raise ConfigError(
            f"no kernel config at {config_path}: pass config=<path to the kernel's .config>"
        )
    modules = Path(modules_dir).expanduser().resolve() if modules_dir else None
    if modules is not None and not (modules / "modules.dep").is_file():
        raise ConfigError(
            f"{modules} has no modules.dep; run: depmod -b <root containing lib/modules> "
            f"{modules.name}"
        )
    release = _custom_release(image, headers_dir, modules)
    st = image.stat()
    ident = hashlib.sha256(
        f"{image}:{st.st_size}:{st.st_mtime_ns}:{headers_dir}:{config_path}:{modules}".encode()
    ).hexdigest()[:12]
    final = kernels_dir() / f"custom-{profile.name}-{release}-{ident}"
    if kernel := load_kernel(final):
        return kernel
    with _entry_lock(final.name):
        if kernel := load_kernel(final, locked=True):
            return kernel
        _remove_stale_partials(final)
        with atomic_dir(final) as tmp:
            tmp.chmod(0o755)
            if modules is None:
                (tmp / "lib" / "modules" / release).mkdir(parents=True)
                run_depmod(tmp, release)
                modules_path = final / "lib" / "modules" / release
            else:
                modules_path = modules
            vmlinux = None
            if profile.boot_image == PVH_BOOT_IMAGE and extract_vmlinux(image, tmp / "vmlinux"):
                vmlinux = final / "vmlinux"
            system_map = next(
                (p for p in (headers_dir / "System.map", image.parent / f"System.map-{release}")
                 if p.is_file()),
                headers_dir / "System.map",
            )
            kernel = Kernel(
                arch=profile.name, series="custom", flavour="custom", release=release,
                package_version="", root=final, image=image, vmlinux=vmlinux,
                config=config_path, system_map=system_map, modules_dir=modules_path,
                headers_dir=headers_dir,
            )
            (tmp / MANIFEST).write_text(kernel.to_json())
            _seal(tmp, kernel)                                 # last
        _mark_sealed(final)
        return kernel


# --------------------------------------------------------------------------- verify / repair


def verify_kernel(kernel: Kernel, *, deep: bool = False) -> str | None:
    """None if every file of the kernel's cache entry is there with its recorded size (and,
    ``deep``, its recorded sha256); else what is wrong."""
    return verify(kernel.root, deep, every_file=True)


@dataclass(frozen=True)
class FetchResult:
    kernel: Kernel
    repaired: str | None = None     # the damage found and repaired, if any
    files: int = 0                  # files verified


def fetch(arch: str, spec: str | None = None, flavour: str | None = None,
          progress: Progress | None = None, *, deep: bool = False) -> FetchResult:
    """``kmodlab kernels fetch``: provision, then verify the whole entry (every file's size,
    ``deep``: every hash).  A damaged entry is discarded (one warning) and provisioned again;
    a ProvisionError if even the fresh one does not verify."""
    _discarded.clear()
    kernel = provision(arch, spec, flavour, progress)
    earlier = _discarded.pop(kernel.root, None)       # provision's own check found damage
    reason = check_entry(kernel.root, "kernel", deep=deep, every_file=True,
                         then="fetching it again")
    if reason is None:
        return FetchResult(kernel, earlier, _count(kernel.root))
    kernel = provision(arch, spec, flavour, progress)
    still = verify_kernel(kernel, deep=deep)
    if still is not None:
        raise ProvisionError(f"kernel {kernel.release}: the cache entry {kernel.root} is still "
                             f"damaged after fetching it again ({still})")
    return FetchResult(kernel, None if reason == ABSENT else reason, _count(kernel.root))


def _count(entry: Path) -> int:
    data = read_manifest(entry)
    if isinstance(data, str):
        return 0
    return len(data["files"]) + len(data.get("links", {}))


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class KernelChoice:
    """One row of ``kmodlab kernels list``."""

    arch: str
    series: str
    flavour: str
    default: bool                 # the default flavour
    latest: str | None            # newest complete release in the archive (None: see note)
    cached: tuple[str, ...]       # releases already in the cache
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        """Plain data for JSON output and tables (``kmodlab kernels list``)."""
        return {"arch": self.arch, "series": self.series, "flavour": self.flavour,
                "default": self.default, "latest": self.latest or "",
                "cached": ", ".join(self.cached), "note": self.note}


def list_kernels(*, online: bool = True, refresh: bool = False) -> list[KernelChoice]:
    """Every arch x series x flavour, with the newest release Debian offers and what is cached.

    ``online=False`` only reads the cache (no apt at all).  A combination Debian does not
    build, or an unreachable archive, shows up with ``latest=None`` and a note.
    """
    table = load_series()
    cached = cached_kernels()
    apts: dict[str, PrivateApt] = {}          # one private apt per arch (default_apt())
    refreshed: set[str] = set()
    rows = []
    from kmodlab.registry import matrix  # the registry package imports kernels lazily too

    combos = sorted({(t.arch, t.series, t.flavour_name) for f in table.flavours
                     for t in matrix(flavour=f)},
                    key=lambda c: (known_arches().index(c[0]), list(table.series).index(c[1]),
                                   list(table.flavours).index(c[2])))
    for arch, series, flavour in combos:
        default = table.default_flavour_for(arch_profile(arch)).name
        latest, note = None, "" if online else "not looked up (offline)"
        if online:
            apt = apts.setdefault(arch, default_apt(arch))
            try:
                latest = resolve(arch, series, flavour, refresh=refresh and arch not in refreshed,
                                 apt=apt).release
            except KmodlabError as exc:
                note = str(exc).splitlines()[0]
            refreshed.add(arch)       # one update per arch is enough
        here = tuple(sorted(k.release for k in cached
                            if (k.arch, k.series, k.flavour) == (arch, series, flavour)))
        rows.append(KernelChoice(arch, series, flavour, flavour == default,
                                 latest, here, note))
    for k in cached:
        if k.series == "custom":
            rows.append(KernelChoice(k.arch, "custom", "custom", False, None, (k.release,),
                                     f"custom kernel, image {k.image}"))
        elif k.config_names and k.root.name.startswith("built-"):
            rows.append(KernelChoice(k.arch, k.series, k.flavour, False, None, (k.release,),
                                     f"built from linux-source {k.package_version} with "
                                     f"--config {','.join(k.config_names)}"))
    return rows
