"""Build the guest initramfs for a kernel: busybox, vmstat, dropbear + sftp-server, keys, virtio modules.

The image is a pure function of its inputs, so it is cached under ``cache_dir("images")`` keyed by
a hash of all of them (init, agent, package versions, kernel release and module contents, keys,
options, this package's own source).  A cache hit re-hashes the inputs, checks the entry's
integrity manifest (``kmodlab.manifest``: the image's size, manifest.json's hash) and returns the
path.  A damaged entry is discarded with one warning and rebuilt; so is, once, an entry from
before manifests (rebuilding is cheap and reproducible, so it is not adopted).
"""

from __future__ import annotations

import hashlib
import json
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kmodlab.errors import ProvisionError
from kmodlab.images.cpio import CpioArchive
from kmodlab.images.elf import needed_closure
from kmodlab.images.guest_packages import Userland, busybox_applets, ensure_userland
from kmodlab.images.keys import dropbear_host_key_path, ssh_client_public_key
from kmodlab.images.kmods import DEFAULT_MODULES, ModuleSelection, select_modules, stage_modules
from kmodlab.kernels.kernel import Kernel
from kmodlab.locate import data_dir
from kmodlab.manifest import check_entry, write_manifest
from kmodlab.paths import atomic_dir, cache_dir, entry_lock
from kmodlab.registry.arch import arch_profile

INIT_SOURCE = data_dir("images") / "init"
AGENT_SOURCE = data_dir("images") / "agent.sh"
AGENT_PATH = "/etc/kmodlab/agent.sh"

IMAGE_NAME = "initramfs.cpio.gz"
MANIFEST = "manifest.json"
GZIP_LEVEL = 6

# Where the programs go in the guest, and where Debian packages put them (pre- and merged-/usr).
BUSYBOX = "/bin/busybox"
DROPBEAR = "/usr/sbin/dropbear"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
VMSTAT = "/usr/bin/vmstat"       # procps: `vmstat -m` (kmodlab.observe.vmstat_slabs)
PACKAGE_PATHS: dict[str, tuple[str, ...]] = {
    VMSTAT: ("/usr/bin/vmstat", "/bin/vmstat"),
    BUSYBOX: ("/bin/busybox", "/usr/bin/busybox"),
    DROPBEAR: ("/usr/sbin/dropbear", "/usr/bin/dropbear", "/sbin/dropbear"),
    SFTP_SERVER: ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server"),
}
SFTP_LINK = ("/usr/lib/sftp-server", "openssh/sftp-server")   # the path dropbear execs

# Applets also linked in /sbin: the kernel runs /sbin/modprobe for request_module().
SBIN_APPLETS = ("modprobe", "insmod", "rmmod", "lsmod", "depmod", "mdev", "poweroff", "reboot",
                "halt", "ip", "ifconfig", "route", "switch_root")

DIRS: tuple[tuple[str, int], ...] = (
    ("/bin", 0o755), ("/sbin", 0o755), ("/usr/bin", 0o755), ("/usr/sbin", 0o755),
    ("/usr/lib", 0o755), ("/lib", 0o755), ("/etc", 0o755), ("/etc/kmodlab", 0o755),
    ("/proc", 0o555), ("/sys", 0o555), ("/dev", 0o755), ("/run", 0o755), ("/tmp", 0o1777),
    ("/mnt", 0o755), ("/var", 0o755), ("/root", 0o700),
)
ETC_FILES: dict[str, bytes] = {
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
    "/etc/group": b"root:x:0:\n",
    "/etc/shells": b"/bin/sh\n",
    "/etc/hostname": b"kmodlab\n",
}


@dataclass(frozen=True)
class _Inputs:
    """Everything the image content depends on, already read; ``key`` is its content hash."""

    kernel: Kernel
    userland: Userland
    modules: ModuleSelection
    init: bytes
    agent: bytes | None
    ssh: bool
    authorized_key: str
    host_key: bytes
    extra: dict[str, tuple[bytes, int]]

    def describe(self) -> dict[str, object]:
        def sha(data: bytes) -> str:
            return hashlib.sha256(data).hexdigest()
        return {
            "builder": _builder_hash(),
            "arch": self.kernel.arch,
            "release": self.kernel.release,
            "userland": self.userland.fingerprint,
            "modules": self.modules.fingerprint(),
            "module_files": sorted(self.modules.files),
            "init": sha(self.init),
            "agent": sha(self.agent) if self.agent is not None else None,
            "ssh": self.ssh,
            "authorized_key": self.authorized_key,
            "host_key": sha(self.host_key),
            "extra": {p: [sha(d), m] for p, (d, m) in sorted(self.extra.items())},
        }

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()


def build_initramfs(kernel: Kernel, *, ssh: bool = True,
                    extra_files: Mapping[str, bytes | Path] | None = None,
                    modules: Iterable[str] = DEFAULT_MODULES) -> Path:
    """The gzip'd newc initramfs for ``kernel``, built on first use and cached by content.

    ``ssh`` adds dropbear, sftp-server, their libraries and the keys.  ``extra_files`` maps guest
    paths to bytes or host files and overrides anything else at the same path (a test may supply
    its own ``/init`` that way).  Files starting with ``#!`` or ELF magic, and host files with an
    executable bit, get mode 755, others 644.  ``modules`` names the kernel modules to ship (with
    their dependencies; built-in ones are skipped).
    """
    inputs = _gather(kernel, ssh=ssh, extra_files=extra_files or {}, modules=modules)
    key = inputs.key
    final = cache_dir("images") / f"{kernel.release}-{key[:24]}"
    image = final / IMAGE_NAME
    if check_entry(final, "initramfs image") is None:
        return image
    with entry_lock(final):
        if check_entry(final, "initramfs image", locked=True) is None:
            return image
        started = time.monotonic()
        archive = assemble(inputs)
        data = archive.to_gzip(GZIP_LEVEL)
        members = archive.members()
        with atomic_dir(final) as tmp:
            (tmp / IMAGE_NAME).write_bytes(data)
            manifest = {
                "key": key,
                "inputs": inputs.describe(),
                "packages": inputs.userland.packages,
                "modules_shipped": [e.path for e in members if e.path.endswith(".ko")],
                "modules_builtin": list(inputs.modules.builtin),
                "modules_missing": list(inputs.modules.missing),
                "size_gzip": len(data),
                "build_seconds": round(time.monotonic() - started, 3),
                "contents": [[e.path, oct(e.mode), len(e.data)] for e in members],
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
            write_manifest(tmp)       # last: the entry is complete
    return image


def image_manifest(image: Path) -> dict[str, object]:
    """The manifest written next to a built image (inputs, contents, sizes)."""
    return json.loads((image.parent / MANIFEST).read_text())


def append_files_cpio(files: Mapping[str, bytes | Path]) -> bytes:
    """A gzip'd cpio member holding ``files``, to concatenate after an initrd at boot.

    The kernel unpacks each concatenated archive in turn, later files replacing earlier ones.
    Gzip members may start at any offset, so this sidesteps the 4-byte alignment an appended
    uncompressed cpio needs (init/initramfs.c:unpack_to_rootfs() takes a cpio only at an offset
    with ``!(this_header & 3)``; docs/guest-notes.md, Initramfs).
    """
    archive = CpioArchive()
    for path, (data, mode) in _read_files(files).items():
        archive.add_file(path, data, mode)
    return archive.to_gzip(GZIP_LEVEL)


def _gather(kernel: Kernel, *, ssh: bool, extra_files: Mapping[str, bytes | Path],
            modules: Iterable[str]) -> _Inputs:
    profile = arch_profile(kernel.arch)
    userland = ensure_userland(profile.debian_arch)
    extra = _read_files(extra_files)
    if "/init" in extra:
        init = extra["/init"][0]
    elif INIT_SOURCE.is_file():
        init = INIT_SOURCE.read_bytes()
    else:
        raise ProvisionError(f"the guest init script {INIT_SOURCE} is missing "
                             "(or pass extra_files={'/init': ...})")
    agent = AGENT_SOURCE.read_bytes() if AGENT_SOURCE.is_file() else None
    authorized_key = ssh_client_public_key() if ssh else ""
    host_key = dropbear_host_key_path().read_bytes() if ssh else b""
    return _Inputs(kernel=kernel, userland=userland,
                   modules=select_modules(kernel.modules_dir, modules), init=init, agent=agent,
                   ssh=ssh, authorized_key=authorized_key, host_key=host_key, extra=extra)


def assemble(inputs: _Inputs) -> CpioArchive:
    """Lay out the guest filesystem.

    Always: the directory skeleton, /dev/console and /dev/null, static busybox with a symlink per
    applet in /bin (and the usual /sbin ones), /etc/passwd, group, shells, hostname, /init, the
    agent, the module subset under /lib/modules/<release>, and procps' vmstat.  With ``ssh``:
    dropbear, sftp-server, the host key and /root/.ssh/authorized_keys.  The dynamic programs'
    DT_NEEDED closure goes to the multiarch lib dir, the loader to its PT_INTERP path.  Then
    ``extra_files`` on top.
    """
    userland = inputs.userland
    arch = userland.arch
    archive = CpioArchive()
    for path, mode in DIRS:
        archive.add_dir(path, mode)
    archive.add_symlink("/var/run", "../run")
    archive.add_device("/dev/console", "c", 5, 1, 0o600)
    archive.add_device("/dev/null", "c", 1, 3, 0o666)

    busybox = userland.path(*PACKAGE_PATHS[BUSYBOX]).read_bytes()
    archive.add_file(BUSYBOX, busybox, 0o755)
    applets = busybox_applets(busybox)
    for applet in applets:
        archive.add_symlink(f"/bin/{applet}", "busybox")
    for applet in SBIN_APPLETS:
        if applet in applets:
            archive.add_symlink(f"/sbin/{applet}", "../bin/busybox")

    for path, data in ETC_FILES.items():
        archive.add_file(path, data, 0o644)
    archive.add_file("/init", inputs.init, 0o755)
    if inputs.agent is not None:
        archive.add_file(AGENT_PATH, inputs.agent, 0o755)

    for path, data in stage_modules(inputs.modules, inputs.kernel.release).items():
        archive.add_file(path, data, 0o644)

    # Dynamically linked programs: procps' vmstat always, dropbear and sftp-server with ssh.
    dynamic = (VMSTAT, DROPBEAR, SFTP_SERVER) if inputs.ssh else (VMSTAT,)
    programs = {p: userland.path(*PACKAGE_PATHS[p]) for p in dynamic}
    for guest_path, host_file in programs.items():
        archive.add_file(guest_path, host_file.read_bytes(), 0o755)
    loader_name = arch.loader.rsplit("/", 1)[-1]
    libs = needed_closure(programs.values(), userland.root, arch.search_dirs)
    # The loader goes to its canonical path (every binary's PT_INTERP), not the lib dir.
    loader = libs.pop(loader_name).path if loader_name in libs else userland.path(
        arch.loader, "/usr" + arch.loader)
    archive.add_file(arch.loader, loader.read_bytes(), 0o755)
    for soname, lib in sorted(libs.items()):
        archive.add_file(f"{arch.lib_dir}/{soname}", lib.path.read_bytes(),
                         _host_mode(lib.path))

    if inputs.ssh:
        archive.add_symlink(*SFTP_LINK)
        archive.add_dir("/etc/dropbear", 0o755)
        archive.add_file("/etc/dropbear/dropbear_ed25519_host_key", inputs.host_key, 0o600)
        archive.add_dir("/root/.ssh", 0o700)
        archive.add_file("/root/.ssh/authorized_keys", (inputs.authorized_key + "\n").encode(),
                         0o600)

    for path, (data, mode) in inputs.extra.items():
        archive.add_file(path, data, mode)
    return archive


def _read_files(files: Mapping[str, bytes | Path]) -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    for guest_path, content in files.items():
        if not guest_path.startswith("/"):
            raise ProvisionError(f"guest paths must be absolute, got {guest_path!r}")
        if isinstance(content, Path):
            data = content.read_bytes()
            executable = bool(content.stat().st_mode & 0o111) or _looks_executable(data)
        else:
            data = bytes(content)
            executable = _looks_executable(data)
        out[guest_path] = (data, 0o755 if executable else 0o644)
    return out


def _looks_executable(data: bytes) -> bool:
    return data.startswith((b"#!", b"\x7fELF"))


def _host_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _builder_hash() -> str:
    """Hash of this package's source: changing how images are built invalidates the cache."""
    h = hashlib.sha256()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        h.update(source.name.encode() + b"\0" + source.read_bytes())
    return h.hexdigest()
