"""QEMU command lines come from the arch profile data; the per-guest parts from QemuConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import ConfigError
from kmodlab.qemu.command import QemuConfig, RunPaths, build_argv, kernel_cmdline
from kmodlab.registry.arch import arch_profile, known_arches

PATHS = RunPaths(console_log=Path("/r/console.log"), command_socket=Path("/s/cmd.sock"),
                 qmp_socket=Path("/s/qmp.sock"), ssh_port=2222)
CONFIG = QemuConfig(kernel_image=Path("/k/vmlinux"), initrd=Path("/i/initrd.gz"))


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("arch", known_arches())
def test_profile_drives_machine_cpu_and_console(arch: str) -> None:
    profile = arch_profile(arch)
    argv = build_argv(profile, CONFIG, PATHS)
    assert argv[0] == profile.qemu_binary
    assert _value(argv, "-machine") == profile.machine
    assert _value(argv, "-cpu") == profile.cpu
    assert f"console={profile.kernel_console}" in _value(argv, "-append")
    assert "-no-reboot" in argv and "-nodefaults" in argv


def test_kernel_log_and_command_channel_are_separate() -> None:
    argv = build_argv(arch_profile("x86_64"), CONFIG, PATHS)
    assert "file,id=kcon,path=/r/console.log" in argv
    assert "socket,id=cmd,path=/s/cmd.sock,server=on,wait=on" in argv
    assert "virtserialport,chardev=cmd,name=kmodlab.cmd" in argv


def test_ssh_adds_port_forward_only_when_asked() -> None:
    profile = arch_profile("arm64")
    plain = build_argv(profile, CONFIG, PATHS)
    assert "-netdev" not in plain
    ssh = build_argv(profile, QemuConfig(**{**CONFIG.__dict__, "ssh": True}), PATHS)
    assert _value(ssh, "-netdev") == "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"
    assert "kmodlab.ssh=1" in _value(ssh, "-append")
    assert _value(ssh, "-device").startswith("virtio-serial")


def test_kvm_uses_host_cpu() -> None:
    argv = build_argv(arch_profile("x86_64"), QemuConfig(**{**CONFIG.__dict__, "accel": "kvm"}), PATHS)
    assert _value(argv, "-cpu") == "host" and _value(argv, "-accel") == "kvm"


def test_incoming_snapshot() -> None:
    paths = RunPaths(**{**PATHS.__dict__, "incoming": Path("/snap/it's.state")})
    argv = build_argv(arch_profile("x86_64"), CONFIG, paths)
    assert _value(argv, "-incoming") == "exec:cat '/snap/it'\\''s.state'"


def test_interactive_puts_the_console_on_the_terminal() -> None:
    argv = build_argv(arch_profile("x86_64"), QemuConfig(**{**CONFIG.__dict__, "interactive": True}), PATHS)
    assert _value(argv, "-serial") == "mon:stdio"
    assert "kmodlab.shell=console" in kernel_cmdline(arch_profile("x86_64"), CONFIG.__class__(
        **{**CONFIG.__dict__, "interactive": True}))
    assert any("wait=off" in a for a in argv)


def test_snapshot_identity_ignores_per_run_endpoints() -> None:
    assert "ssh_port" not in CONFIG.shaping_fields()
    assert CONFIG.shaping_fields() != QemuConfig(**{**CONFIG.__dict__, "memory_mb": 1024}).shaping_fields()


def test_unknown_arch_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="x86_64"):
        arch_profile("riscv64")


def test_aliases() -> None:
    assert arch_profile("aarch64").name == "arm64" and arch_profile("amd64").name == "x86_64"


def test_shared_memory_is_an_ivshmem_bar_backed_by_the_run_file() -> None:
    config = QemuConfig(**{**CONFIG.__dict__, "shared_memory_mb": 4})
    paths = RunPaths(**{**PATHS.__dict__, "shared_memory": Path("/r/a,b/shared-memory")})
    argv = build_argv(arch_profile("arm64"), config, paths)
    backend = argv[argv.index("-object") + 1]
    # commas in the path doubled (QEMU's option syntax), share=on so writes reach the file
    assert backend == ("memory-backend-file,id=kml_shm,share=on,mem-path=/r/a,,b/shared-memory,"
                       "size=4M")
    # master=on: a peer (the default) blocks migration, and snapshots are migrations
    assert "ivshmem-plain,memdev=kml_shm,master=on" in argv
    assert "-object" not in build_argv(arch_profile("arm64"), CONFIG, paths)
    with pytest.raises(ValueError, match="host file"):
        build_argv(arch_profile("arm64"), config, PATHS)


def test_shared_memory_size_shapes_the_snapshot_but_its_path_does_not() -> None:
    """A snapshot restores into any run's file (the RAM block is found by the backend's id);
    guests without the device keep the key they had before the device existed."""
    with_shm = QemuConfig(**{**CONFIG.__dict__, "shared_memory_mb": 1})
    assert "shared_memory_mb" not in CONFIG.shaping_fields()
    assert with_shm.shaping_fields()["shared_memory_mb"] == 1
    assert "shared-memory" not in str(with_shm.shaping_fields())


@pytest.mark.parametrize("size", [3, 512, -1])
def test_shared_memory_must_be_a_power_of_two_bar(size: int) -> None:
    from kmodlab.guest import GuestOptions

    with pytest.raises(ConfigError, match="power of two"):
        GuestOptions(shared_memory_mb=size)
    assert GuestOptions(shared_memory_mb=0).shared_memory_mb == 0


def test_an_interactive_guest_gets_its_shared_memory_file(tmp_path: Path) -> None:
    """``kmodlab boot`` built its endpoints by hand and lost the device's file when every guest
    got shared memory: QEMU's command line could not be built at all."""
    from kmodlab.interactive import interactive_paths

    config = QemuConfig(**{**CONFIG.__dict__, "shared_memory_mb": 1, "interactive": True})
    paths = interactive_paths(config, tmp_path, tmp_path / "s", None)
    assert paths.shared_memory is not None and paths.shared_memory.stat().st_size == 1 << 20
    argv = build_argv(arch_profile("x86_64"), config, paths)
    assert f"mem-path={paths.shared_memory}" in " ".join(argv)
