"""Build QEMU command lines from an arch profile, a kernel and a guest's options.

Pure: no processes, no files; unit-tested on its own.  Everything that varies by arch comes from
the profile, everything that varies per guest from :class:`QemuConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kmodlab.registry.arch import ArchProfile


@dataclass(frozen=True)
class QemuConfig:
    """What shapes a guest.  ``snapshot_key()`` hashes exactly the fields that shape its state."""

    kernel_image: Path
    initrd: Path
    memory_mb: int = 512
    cpus: int = 1
    accel: str = "tcg"
    ssh: bool = False
    interactive: bool = False
    extra_cmdline: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    cpu: str = ""                  # the TCG CPU model; empty: the arch profile's
    shared_memory_mb: int = 0      # an ivshmem-plain PCI device whose BAR 2 is a host file

    def shaping_fields(self) -> dict[str, object]:
        return {"kernel_image": str(self.kernel_image), "initrd": str(self.initrd),
                "cpu": self.cpu,
                "memory_mb": self.memory_mb, "cpus": self.cpus, "accel": self.accel,
                "ssh": self.ssh, "extra_cmdline": list(self.extra_cmdline),
                "extra_args": list(self.extra_args),
                # only when present, so guests without the device keep their snapshots
                **({"shared_memory_mb": self.shared_memory_mb} if self.shared_memory_mb else {})}


@dataclass(frozen=True)
class RunPaths:
    """Per-run endpoints (not part of a snapshot's identity)."""

    console_log: Path
    command_socket: Path
    qmp_socket: Path
    ssh_port: int | None = None
    incoming: Path | None = None
    shared_memory: Path | None = None   # the host file behind the ivshmem BAR (per run)


def kernel_cmdline(profile: ArchProfile, config: QemuConfig) -> str:
    words = list(profile.cmdline)
    if config.ssh:
        words.append("kmodlab.ssh=1")
    if config.interactive:
        words.append("kmodlab.shell=console")
    words.extend(config.extra_cmdline)
    return " ".join(words)


def build_argv(profile: ArchProfile, config: QemuConfig, paths: RunPaths,
               qemu_binary: str | None = None) -> list[str]:
    argv = [qemu_binary or profile.qemu_binary,
            "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
            "-machine", profile.machine,
            "-accel", config.accel,
            "-cpu", profile.kvm_cpu if config.accel == "kvm" else (config.cpu or profile.cpu),
            "-smp", str(config.cpus), "-m", str(config.memory_mb),
            "-kernel", str(config.kernel_image), "-initrd", str(config.initrd),
            "-append", kernel_cmdline(profile, config)]
    if config.interactive:
        # The user's terminal is the kernel console (with QEMU's monitor muxed on Ctrl-A c).
        argv += ["-serial", "mon:stdio"]
    else:
        argv += ["-chardev", f"file,id=kcon,path={paths.console_log}", "-serial", "chardev:kcon"]
    argv += ["-qmp", f"unix:{paths.qmp_socket},server=on,wait=off"]
    # The command channel: a virtio serial port (flow-controlled; a virtconsole would drop output
    # when the host is slow) whose host end is a unix socket QEMU waits on.
    argv += ["-device", profile.virtio_device("serial"),
             "-chardev", (f"socket,id=cmd,path={paths.command_socket},server=on,"
                          f"wait={'off' if config.interactive else 'on'}"),
             "-device", "virtserialport,chardev=cmd,name=kmodlab.cmd"]
    if config.ssh:
        if paths.ssh_port is None:
            raise ValueError("an SSH guest needs a host port")
        nic = f"{profile.virtio_device('net')},netdev=n0"
        if profile.nic_romfile:
            nic += ",romfile="
        argv += ["-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{paths.ssh_port}-:22",
                 "-device", nic]
    if config.shared_memory_mb:
        argv += shared_memory_args(config.shared_memory_mb, paths.shared_memory)
    argv += list(profile.extra_args)
    argv += list(config.extra_args)
    if paths.incoming is not None:
        argv += ["-incoming", f"exec:cat {_shell_word(str(paths.incoming))}"]
    return argv


SHARED_MEMORY_ID = "kml_shm"
"""The memory backend's id: its RAM block is named after it in a snapshot's migration stream,
so a restore finds it again whatever file the new run gives it."""


def shared_memory_args(size_mb: int, path: Path | None) -> list[str]:
    """QEMU's ivshmem-plain device (docs/specs/ivshmem-spec.rst: BAR 2 maps the shared memory)
    backed by ``path`` with share=on, so guest writes land in the host file.  Every arch's
    machine has a PCI bus (pc, virt), so this holds for all of them.  The path is per run, not
    part of the snapshot key: restoring a snapshot writes the saved contents into the new file."""
    if path is None:
        raise ValueError("a guest with shared memory needs its host file")
    mem_path = str(path).replace(",", ",,")       # QEMU's option syntax escapes commas
    backend = (f"memory-backend-file,id={SHARED_MEMORY_ID},share=on,mem-path={mem_path},"
               f"size={size_mb}M")
    return ["-object", backend,
            # master=on: hw/misc/ivshmem.c blocks migration of a peer (master=off, the
            # default), and a snapshot is a migration
            "-device", f"ivshmem-plain,memdev={SHARED_MEMORY_ID},master=on"]


def _shell_word(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
