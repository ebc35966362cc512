"""build_initramfs end to end without network: the host's own / stands in for the guest packages.

Checks the layout (what the guest needs, with the right modes), the content-hash cache (a hit is
fast, every input changes the key) and reproducibility (a rebuild gives identical bytes).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from test_initramfs_kmods import RELEASE, fake_tree, module_bytes

from kmodlab.errors import ProvisionError
from kmodlab.images import (
    append_files_cpio,
    build_initramfs,
    image_manifest,
    initramfs,
    ssh_client_public_key,
)
from kmodlab.images.guest_packages import Userland, guest_arch
from kmodlab.kernels.kernel import Kernel

HOST_TOOLS = ["cpio", "depmod", "dropbearkey", "dpkg"]
HOST_FILES = ["/bin/busybox", "/usr/sbin/dropbear", "/usr/lib/openssh/sftp-server"]
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in HOST_TOOLS)
    or not all(Path(f).is_file() for f in HOST_FILES)
    or os.geteuid() != 0,
    reason="needs root and host busybox-static, dropbear-bin, openssh-sftp-server, cpio, kmod",
)

TEST_INIT = b"#!/bin/busybox sh\necho test init\npoweroff -f\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kernel:
    """A private cache, the host as 'userland', and a fake x86_64 kernel with fake modules."""
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    host = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()
    if host != "amd64":
        pytest.skip("the fake kernel is x86_64")
    userland = Userland(arch=guest_arch(host), suite="host", root=Path("/"),
                        packages={"host-root": "1"})
    monkeypatch.setattr(initramfs, "ensure_userland", lambda debian_arch: userland)
    modules_dir = fake_tree(tmp_path / "kernel", with_dep=False)
    root = tmp_path / "kernel"
    return Kernel(arch="x86_64", series="9.9", flavour="cloud", release=RELEASE,
                  package_version="1",
                  root=root, image=root / "vmlinuz", vmlinux=None, config=root / "config",
                  system_map=root / "System.map", modules_dir=modules_dir, headers_dir=root)


def extract(image: Path, dest: Path) -> Path:
    dest.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], cwd=dest,
                   input=gzip.decompress(image.read_bytes()), check=True)
    return dest


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_layout(env: Kernel, tmp_path: Path) -> None:
    image = build_initramfs(env, extra_files={"/init": TEST_INIT, "/etc/motd": b"hi\n"})
    assert image.name == "initramfs.cpio.gz"
    root = extract(image, tmp_path / "x")
    assert (root / "init").read_bytes() == TEST_INIT and mode(root / "init") == 0o755
    assert (root / "etc/motd").read_bytes() == b"hi\n" and mode(root / "etc/motd") == 0o644
    assert mode(root / "bin/busybox") == 0o755
    for applet in ("sh", "modprobe", "ip", "mount", "poweroff"):
        assert os.readlink(root / "bin" / applet) == "busybox"
    assert os.readlink(root / "sbin/modprobe") == "../bin/busybox"
    assert (root / "etc/passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    assert (root / "etc/shells").read_text() == "/bin/sh\n"
    assert (root / "etc/group").is_file()
    assert mode(root / "root") == 0o700 and mode(root / "tmp") == 0o1777
    assert stat.S_ISCHR((root / "dev/console").lstat().st_mode)
    # SSH pieces, with the modes dropbear insists on.
    assert mode(root / "usr/sbin/dropbear") == 0o755
    assert mode(root / "usr/lib/openssh/sftp-server") == 0o755
    assert os.readlink(root / "usr/lib/sftp-server") == "openssh/sftp-server"
    assert mode(root / "root/.ssh") == 0o700
    keys = root / "root/.ssh/authorized_keys"
    assert mode(keys) == 0o600 and keys.read_text() == ssh_client_public_key() + "\n"
    assert mode(root / "etc/dropbear/dropbear_ed25519_host_key") == 0o600
    # Libraries in the multiarch dir under their sonames, loader at PT_INTERP, libgmp included.
    assert (root / "lib64/ld-linux-x86-64.so.2").is_file()
    assert mode(root / "lib64/ld-linux-x86-64.so.2") == 0o755
    libdir = root / "lib/x86_64-linux-gnu"
    for soname in ("libc.so.6", "libtomcrypt.so.1", "libtommath.so.1", "libgmp.so.10", "libz.so.1",
                   "libcrypt.so.1"):
        assert (libdir / soname).is_file() and not (libdir / soname).is_symlink(), soname
    assert not (libdir / "ld-linux-x86-64.so.2").exists()
    # Modules: plain .ko with a modules.dep for just the subset.
    mods = root / "lib/modules" / RELEASE
    assert (mods / "kernel/drivers/net/virtio_net.ko").is_file()
    assert (mods / "kernel/drivers/char/hw_random/virtio-rng.ko").is_file()
    assert (mods / "kernel/fs/ext4/ext4.ko").is_file()      # asked for, with its dependency
    assert (mods / "kernel/fs/jbd2/jbd2.ko").is_file()
    assert not (mods / "kernel/fs/xfs/xfs.ko").exists()     # not asked for
    assert "kernel/drivers/net/virtio_net.ko:" in (mods / "modules.dep").read_text()
    # The agent is copied verbatim when the project has one.
    if initramfs.AGENT_SOURCE.is_file():
        agent = root / "etc/kmodlab/agent.sh"
        assert agent.read_bytes() == initramfs.AGENT_SOURCE.read_bytes() and mode(agent) == 0o755
    manifest = image_manifest(image)
    assert manifest["modules_builtin"] == ["virtio_console", "virtio_mmio"]
    assert manifest["size_gzip"] == image.stat().st_size


def test_cache_hit_and_reproducibility(env: Kernel) -> None:
    extra = {"/init": TEST_INIT}
    image = build_initramfs(env, extra_files=extra)
    first = image.read_bytes()
    mtime = image.stat().st_mtime_ns
    started = time.monotonic()
    assert build_initramfs(env, extra_files=extra) == image
    assert time.monotonic() - started < 0.5
    assert image.stat().st_mtime_ns == mtime                 # not rewritten
    shutil.rmtree(image.parent)
    rebuilt = build_initramfs(env, extra_files=extra)
    assert rebuilt == image and rebuilt.read_bytes() == first


def test_damaged_image_is_rebuilt(env: Kernel, caplog: pytest.LogCaptureFixture) -> None:
    extra = {"/init": TEST_INIT}
    image = build_initramfs(env, extra_files=extra)
    good = image.read_bytes()
    assert (image.parent / "integrity.json").is_file()
    with open(image, "r+b") as fh:            # truncated, as a full disk or a killed copy leaves it
        fh.truncate(len(good) // 2)
    caplog.set_level(logging.WARNING)
    assert build_initramfs(env, extra_files=extra) == image
    assert image.read_bytes() == good
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "initramfs image" in line and f"the manifest says {len(good)}" in line
    # An entry from before manifests is rebuilt once (the image is reproducible).
    (image.parent / "integrity.json").unlink()
    mtime = image.stat().st_mtime_ns
    assert build_initramfs(env, extra_files=extra) == image
    assert image.read_bytes() == good and image.stat().st_mtime_ns != mtime
    mtime = image.stat().st_mtime_ns
    assert build_initramfs(env, extra_files=extra) == image
    assert image.stat().st_mtime_ns == mtime


def test_every_input_changes_the_key(env: Kernel) -> None:
    base = build_initramfs(env, extra_files={"/init": TEST_INIT})
    other_init = build_initramfs(env, extra_files={"/init": TEST_INIT + b"# changed\n"})
    extra = build_initramfs(env, extra_files={"/init": TEST_INIT, "/x": b"1"})
    no_ssh = build_initramfs(env, ssh=False, extra_files={"/init": TEST_INIT})
    fewer_modules = build_initramfs(env, extra_files={"/init": TEST_INIT}, modules=["virtio_rng"])
    (env.modules_dir / "kernel/net/core/failover.ko").write_bytes(module_bytes("failover") + b"x")
    module_changed = build_initramfs(env, extra_files={"/init": TEST_INIT})
    paths = [base, other_init, extra, no_ssh, fewer_modules, module_changed]
    assert len({p.parent for p in paths}) == len(paths)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(no_ssh.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()
    assert "usr/sbin/dropbear" not in listing and "root/.ssh/authorized_keys" not in listing
    assert "bin/busybox" in listing


def test_missing_init_is_explained(env: Kernel, monkeypatch: pytest.MonkeyPatch,
                                   tmp_path: Path) -> None:
    monkeypatch.setattr(initramfs, "INIT_SOURCE", tmp_path / "no-init")
    with pytest.raises(ProvisionError, match="init"):
        build_initramfs(env)


def test_relative_guest_path_is_rejected(env: Kernel) -> None:
    with pytest.raises(ProvisionError, match="absolute"):
        build_initramfs(env, extra_files={"init": TEST_INIT})


def test_append_files_cpio_concatenates(env: Kernel, tmp_path: Path) -> None:
    image = build_initramfs(env, extra_files={"/init": TEST_INIT})
    host_file = tmp_path / "mod.ko"
    host_file.write_bytes(b"\x7fELF module")
    member = append_files_cpio({"/extra/a.txt": b"hello", "/lib/modules/extra/mod.ko": host_file,
                                "/extra/run": b"#!/bin/sh\n"})
    assert member[:2] == b"\x1f\x8b"
    assert member == append_files_cpio({"/extra/a.txt": b"hello", "/extra/run": b"#!/bin/sh\n",
                                        "/lib/modules/extra/mod.ko": host_file})
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet"], cwd=out, input=gzip.decompress(member), check=True)
    assert (out / "extra/a.txt").read_bytes() == b"hello" and mode(out / "extra/a.txt") == 0o644
    assert mode(out / "extra/run") == 0o755
    assert (out / "lib/modules/extra/mod.ko").read_bytes() == b"\x7fELF module"
    # Both members survive concatenation (what the kernel sees at boot).
    both = gzip.decompress(image.read_bytes() + member)
    assert both == gzip.decompress(image.read_bytes()) + gzip.decompress(member)
