"""``kmodlab boot``: the user's terminal becomes the guest's console, with a root shell on it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kmodlab.guest import GuestOptions, free_port, prepare_qemu_config, zeroed_file
from kmodlab.kernels.kernel import Kernel
from kmodlab.paths import cache_dir
from kmodlab.qemu.command import QemuConfig, RunPaths, build_argv
from kmodlab.qemu.process import QemuProcess
from kmodlab.registry.arch import arch_profile


def interactive_paths(config: QemuConfig, run_dir: Path, sock_dir: Path,
                      ssh_port: int | None) -> RunPaths:
    """The endpoints of an interactive guest, its shared memory file (zeros) included: the
    guest has the same devices as every other, so what a user tries here runs the same there."""
    shared = (zeroed_file(run_dir / "shared-memory", config.shared_memory_mb << 20)
              if config.shared_memory_mb else None)
    return RunPaths(console_log=run_dir / "console.log", command_socket=sock_dir / "cmd.sock",
                    qmp_socket=sock_dir / "qmp.sock", ssh_port=ssh_port, shared_memory=shared)


def boot_interactive(kernel: Kernel, *, memory_mb: int = 512, cpus: int = 1, accel: str = "auto",
                     ssh: bool = False) -> int:
    options = GuestOptions(memory_mb=memory_mb, cpus=cpus, accel=accel, ssh=ssh)
    config, _accel = prepare_qemu_config(kernel, options, interactive=True)
    profile = arch_profile(kernel.arch)
    sock_dir = Path(tempfile.mkdtemp(prefix="kml-", dir="/tmp"))
    run_dir = cache_dir("runs", "interactive")
    port = free_port() if ssh else None
    paths = interactive_paths(config, run_dir, sock_dir, port)
    where = f"; ssh -p {port} root@127.0.0.1 (kmodlab's key)" if port else ""
    print(f"kmodlab: booting {kernel.release} on {profile.name}; Ctrl-A x quits QEMU{where}")
    qemu = QemuProcess(build_argv(profile, config, paths), profile.qemu_package,
                       run_dir / "qemu.stderr", interactive=True)
    try:
        return qemu.wait()
    finally:
        qemu.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)
