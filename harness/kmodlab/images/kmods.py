"""Pick the kernel modules the guest needs (virtio transports, console, net, rng) and their deps.

Only a handful of the kernel's ~1100 modules go into the image, with a ``modules.dep`` regenerated
by ``depmod`` for just that subset, so busybox ``modprobe`` in the guest resolves dependencies.
Compressed modules (Debian 6.12 ships ``.ko.xz``) are decompressed on the host: busybox modprobe
loads plain ELF through init_module(), and a plain .ko inside the gzip'd initramfs costs nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.errors import MissingToolError, ProvisionError
from kmodlab.images.elf import section

# What every guest may need; those built into the kernel (see modules.builtin) are skipped.
DEFAULT_MODULES: tuple[str, ...] = (
    "virtio", "virtio_ring", "virtio_pci", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
    "virtio_mmio", "virtio_console", "virtio_net", "net_failover", "failover", "virtio_rng",
    # a RAM disk: read through its block device, it fills the page cache with clean pages
    # reclaim can free (the GFP-under-pressure claims; the guest has no other disk)
    "brd",
    # ext2 on that RAM disk (ext4 serves ext2: CONFIG_EXT4_USE_FOR_EXT2); built in on Debian's
    # cloud kernels, a module on the generic and i386 ones, where its mount asks the crypto API
    # for crc32c (fs/ext4/super.c: "Cannot load crc32c driver" without it)
    "ext4", "crc32c_generic",
)

COMPRESSED_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz")
# depmod reads these from the tree; copied verbatim so the subset's index stays truthful.
METADATA_FILES = ("modules.builtin", "modules.builtin.modinfo", "modules.order")


def module_name(path: str) -> str:
    """Kernel module name of a file name: ``.../virtio-rng.ko.xz`` -> ``virtio_rng``."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (*COMPRESSED_SUFFIXES, ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def plain_relpath(relpath: str) -> str:
    """Where a module goes in the guest: the same path without a compression suffix."""
    for suffix in COMPRESSED_SUFFIXES:
        if relpath.endswith(suffix):
            return relpath[: -len(suffix)] + ".ko"
    return relpath


@dataclass(frozen=True)
class ModuleSelection:
    """The modules to ship: ``files`` maps the path relative to modules_dir -> host file."""

    modules_dir: Path
    files: dict[str, Path]
    builtin: tuple[str, ...] = ()       # requested but built into the kernel
    missing: tuple[str, ...] = ()       # requested but neither a module nor built in
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)  # relpath -> dep relpaths

    def fingerprint(self) -> str:
        """Content hash of the selected module files and depmod's inputs, for the image key."""
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + _sha256(self.files[rel]).encode() + b"\n")
        for name in METADATA_FILES:
            path = self.modules_dir / name
            if path.is_file():
                h.update(name.encode() + b"\0" + _sha256(path).encode() + b"\n")
        h.update(f"builtin:{','.join(self.builtin)};missing:{','.join(self.missing)}".encode())
        return h.hexdigest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_modules_dep(text: str) -> dict[str, tuple[str, ...]]:
    """``modules.dep`` -> {module relpath: dependency relpaths}."""
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        module, _, rest = line.partition(":")
        deps[module.strip()] = tuple(rest.split())
    return deps


def builtin_names(modules_dir: Path) -> set[str]:
    path = modules_dir / "modules.builtin"
    if not path.is_file():
        return set()
    return {module_name(line.strip()) for line in path.read_text().splitlines() if line.strip()}


def select_modules(modules_dir: Path, wanted: Iterable[str] = DEFAULT_MODULES) -> ModuleSelection:
    """The files of ``wanted`` modules (by name; '-' and '_' are the same) and all their deps.

    Uses ``modules.dep`` when the kernel tree has one; Debian's .deb ships none (its postinst
    runs depmod: docs/guest-notes.md, Initramfs), so otherwise dependencies come from each
    module's own ``.modinfo`` depends=.
    """
    if not modules_dir.is_dir():
        raise ProvisionError(f"kernel modules directory {modules_dir} does not exist; "
                             "re-provision the kernel")
    dep_file = modules_dir / "modules.dep"
    if dep_file.is_file():
        graph = parse_modules_dep(dep_file.read_text())
        by_name = {module_name(rel): rel for rel in graph}

        def deps_of(rel: str) -> tuple[str, ...]:
            return graph[rel]
    else:
        by_name = _index_tree(modules_dir)

        def deps_of(rel: str) -> tuple[str, ...]:
            names = modinfo_depends(load_module(modules_dir / rel))
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise ProvisionError(f"{rel} depends on {unknown}, not found in {modules_dir}")
            return tuple(by_name[n] for n in names)

    builtins = builtin_names(modules_dir)
    selected: dict[str, tuple[str, ...]] = {}
    builtin: list[str] = []
    missing: list[str] = []
    todo = [name.replace("-", "_") for name in wanted]
    while todo:
        name = todo.pop(0)
        rel = by_name.get(name)
        if rel is None:
            (builtin if name in builtins else missing).append(name)
            continue
        if rel in selected:
            continue
        selected[rel] = deps_of(rel)
        todo.extend(module_name(d) for d in selected[rel])
    return ModuleSelection(
        modules_dir=modules_dir,
        files={rel: modules_dir / rel for rel in sorted(selected)},
        builtin=tuple(sorted(set(builtin))),
        missing=tuple(sorted(set(missing))),
        deps=selected,
    )


def _index_tree(modules_dir: Path) -> dict[str, str]:
    index: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(modules_dir):
        dirnames.sort()
        for filename in sorted(filenames):
            if filename.endswith(".ko") or filename.endswith(COMPRESSED_SUFFIXES):
                rel = os.path.relpath(os.path.join(dirpath, filename), modules_dir)
                index.setdefault(module_name(filename), rel)
    return index


def load_module(path: Path) -> bytes:
    """A module's ELF bytes, decompressing .ko.xz / .ko.gz / .ko.zst."""
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    if name.endswith(".ko.zst"):
        if shutil.which("zstd") is None:
            raise MissingToolError("zstd", "zstd")
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return path.read_bytes()


def modinfo_depends(module: bytes) -> tuple[str, ...]:
    """Names in the ``depends=`` field of a module's .modinfo section."""
    info = section(module, ".modinfo") or b""
    for field_ in info.split(b"\0"):
        if field_.startswith(b"depends="):
            value = field_[len(b"depends="):].decode()
            return tuple(n.replace("-", "_") for n in value.split(",") if n)
    return ()


def stage_modules(selection: ModuleSelection, release: str) -> dict[str, bytes]:
    """Guest files for the selection: /lib/modules/<release>/... plain .ko + depmod's indexes."""
    if shutil.which("depmod") is None:
        raise MissingToolError("depmod", "kmod")
    with tempfile.TemporaryDirectory(prefix="kmodlab-depmod-") as tmp:
        tree = Path(tmp) / "lib" / "modules" / release
        tree.mkdir(parents=True)
        for rel, host_file in selection.files.items():
            dest = tree / plain_relpath(rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(load_module(host_file))
        for name in METADATA_FILES:
            source = selection.modules_dir / name
            if source.is_file():
                shutil.copyfile(source, tree / name)
        proc = subprocess.run(["depmod", "-b", tmp, release], check=False, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise ProvisionError(f"depmod -b {tmp} {release} failed:\n{proc.stderr.strip()}")
        files: dict[str, bytes] = {}
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                guest_path = f"/lib/modules/{release}/{path.relative_to(tree).as_posix()}"
                files[guest_path] = path.read_bytes()
        return files
