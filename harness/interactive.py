"""``kmodlab boot``: the user's terminal becomes the guest's console, with a root shell on it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kmodlab.kernels.kernel import Kernel
from kmodlab.paths import cache_dir
from kmodlab.profiles import arch_profile
from kmodlab.qemu.accel import choose_accel
from kmodlab.qemu.command import QemuConfig, RunPaths, build_argv
from kmodlab.qemu.process import QemuProcess


def boot_interactive(kernel: Kernel, *, memory_mb: int = 512, cpus: int = 1, accel: str = "auto",
                     ssh: bool = False) -> int:
    from kmodlab.images import build_initramfs
    from kmodlab.kernels import require_kernel_config

    require_kernel_config(kernel)
    profile = arch_profile(kernel.arch)
    config = QemuConfig(kernel_image=kernel.boot_image, initrd=build_initramfs(kernel, ssh=True),
                        memory_mb=memory_mb, cpus=cpus, accel=choose_accel(profile, accel).accel,
                        ssh=ssh, interactive=True)
    sock_dir = Path(tempfile.mkdtemp(prefix="kml-", dir="/tmp"))
    run_dir = cache_dir("runs", "interactive")
    paths = RunPaths(console_log=run_dir / "console.log", command_socket=sock_dir / "cmd.sock",
                     qmp_socket=sock_dir / "qmp.sock", ssh_port=2222 if ssh else None)
    print(f"kmodlab: booting {kernel.release} on {profile.name}; Ctrl-A x quits QEMU")
    qemu = QemuProcess(build_argv(profile, config, paths), profile.qemu_package,
                       run_dir / "qemu.stderr", interactive=True)
    try:
        return qemu.wait()
    finally:
        qemu.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)
