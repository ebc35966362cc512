"""A running guest: a real kernel under QEMU that you can run commands in.

The lifecycle is an explicit state machine (off -> starting|restoring -> booted -> ready ->
stopped, or crashed/broken), and every failure names the state it happened in.

    with Guest(provision("arm64", "6.12")) as g:
        print(g.run("cat /proc/buddyinfo").stdout)
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Self

from kmodlab.channel.agent import AgentConsole
from kmodlab.channel.protocol import CommandResult
from kmodlab.channel.serial import connect_serial
from kmodlab.console.watch import ConsoleWatcher
from kmodlab.errors import (
    BootTimeout,
    CommandFailed,
    CommandTimeout,
    ConfigError,
    GuestError,
    KernelCrash,
    ProvisionError,
)
from kmodlab.kernels.kernel import Kernel
from kmodlab.paths import cache_dir, sweep, sweep_run_dirs
from kmodlab.qemu.accel import AccelChoice, choose_accel
from kmodlab.qemu.command import QemuConfig, RunPaths, build_argv
from kmodlab.qemu.process import QemuProcess
from kmodlab.qemu.qmp import QMPClient
from kmodlab.registry.arch import arch_profile
from kmodlab.snapshot import (
    save_snapshot,
    snapshot_damage,
    snapshot_key,
    snapshot_path,
    sweep_legacy_snapshots,
    usable_snapshot,
)

log = logging.getLogger(__name__)

TRANSPORTS = ("serial", "ssh")
MIN_MEMORY_MB = 128
"""Measured: x86_64 6.1 cloud with kmodlab's initramfs boots with 96 MiB (62 MB MemTotal, 28 MB
free) and runs out of memory at 64 MiB; 128 MiB leaves room for the modules under test."""
MAX_MEMORY_MB = 16384
MAX_CPUS = 64
# Every guest has a small ivshmem device (a PCI BAR backed by a host file); 1 MiB costs nothing
# (the file is sparse, a restore moves only its written pages) and keeps one snapshot per kernel.
SHARED_MEMORY_MB = 1
MAX_SHARED_MEMORY_MB = 256
_run_counter = itertools.count()
KEEP_RUN_DIRS = 40
_live_run_dirs: set[Path] = set()    # run folders of this process's guests not stopped yet


class GuestState(str, enum.Enum):
    OFF = "off"
    STARTING = "starting"      # cold boot: QEMU started, waiting for the agent
    RESTORING = "restoring"    # QEMU loading a snapshot
    BOOTED = "booted"          # agent answered on the command console
    READY = "ready"            # the chosen transport is connected
    CRASHED = "crashed"        # the kernel panicked/oopsed, or QEMU died
    BROKEN = "broken"          # a command hung; the guest cannot be trusted any more
    STOPPED = "stopped"


@dataclass(frozen=True)
class GuestOptions:
    transport: str = "serial"
    memory_mb: int = 512
    cpus: int = 1
    accel: str = "auto"
    boot_timeout: float = 60.0
    snapshots: bool = True          # start from a saved state when one matches; save one if not
    ssh: bool | None = None         # network + dropbear in the guest; default: transport == "ssh"
    extra_cmdline: tuple[str, ...] = ()
    check_config: bool = True
    idle_skips_time: bool = False
    """Under TCG, count the guest's time in instructions and jump over idle periods (QEMU
    ``-icount shift=0,sleep=off``): a guest that sleeps or waits for a timer (kmemleak's
    5-second minimum age) costs almost no real time, and timers fire at the same instruction
    counts after every restore (input from the host still arrives when it arrives)."""

    shared_memory_mb: int = SHARED_MEMORY_MB
    """Size of the guest's ivshmem-plain PCI device (0: none).  Its BAR 2 is a host file of
    this size, fresh for every run (:attr:`Guest.shared_memory`): the ``ioremap`` family
    writes a pattern through the kernel's MMIO accessors and the host reads what arrived."""

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"unknown transport '{self.transport}'; use one of {TRANSPORTS}")
        if not MIN_MEMORY_MB <= self.memory_mb <= MAX_MEMORY_MB:
            raise ConfigError(f"guest memory must be {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MiB, not "
                              f"{self.memory_mb}: the kernel and its initramfs need "
                              f"{MIN_MEMORY_MB} MiB to boot")
        if not 1 <= self.cpus <= MAX_CPUS:
            raise ConfigError(f"guest CPUs must be 1..{MAX_CPUS}, not {self.cpus}")
        if not self.boot_timeout > 0:
            raise ConfigError(f"the boot timeout must be a positive number of seconds, not "
                              f"{self.boot_timeout}")
        size = self.shared_memory_mb
        if size and (size & (size - 1) or size > MAX_SHARED_MEMORY_MB):
            # hw/misc/ivshmem.c: the BAR is the backend's size, and a PCI BAR is a power of two
            raise ConfigError(f"shared memory must be 0 (none) or a power of two up to "
                              f"{MAX_SHARED_MEMORY_MB} MiB, not {size}")
        if self.transport == "ssh" and self.ssh is False:
            raise ConfigError("the ssh transport needs ssh enabled in the guest")

    @property
    def wants_ssh(self) -> bool:
        return self.transport == "ssh" if self.ssh is None else self.ssh


@dataclass
class GuestTimings:
    start_to_ready: float = 0.0
    booted_from: str = ""           # "cold" or "snapshot"
    snapshot_save: float | None = None
    notes: list[str] = field(default_factory=list)


class Guest:
    """A booted guest with a console (serial or SSH).  Use as a context manager."""

    def __init__(self, kernel: Kernel, options: GuestOptions | None = None, **overrides: object):
        self.kernel = kernel
        self.options = replace(options or GuestOptions(), **overrides)  # type: ignore[arg-type]
        self.profile = arch_profile(kernel.arch)
        self.state = GuestState.OFF
        self.timings = GuestTimings()
        _sweep_leftovers()
        self.run_dir = _new_run_dir(kernel.label)
        _live_run_dirs.add(self.run_dir)
        self.console_log = self.run_dir / "console.log"
        # The owner's PID in the name lets paths.sweep_socket_dirs tell a live folder from one a
        # killed process left behind.
        self._sock_dir = Path(tempfile.mkdtemp(prefix=f"kml-{os.getpid()}-", dir="/tmp"))
        self._qemu: QemuProcess | None = None
        self._watcher: ConsoleWatcher | None = None
        self._serial: AgentConsole | None = None
        self._ssh: AgentConsole | None = None
        self._qmp: QMPClient | None = None
        self.ssh_port: int | None = None
        self._config: QemuConfig | None = None
        self.qemu_pids: list[int] = []     # every QEMU this guest started (restore + fallback)

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Guest:
        if self.state != GuestState.OFF:
            raise GuestError("a guest can be started once", state=self.state.value)
        t0 = time.monotonic()
        try:
            self._config = self._prepare()
            snap = snapshot_path(snapshot_key(self.profile, self._config, self.kernel.release))
            if self.options.snapshots:
                self._try_restore(snap)
            if self.timings.booted_from != "snapshot":
                self._launch(incoming=None)
                self.timings.booted_from = "cold"
                if self.options.snapshots:
                    self._save_snapshot(snap)
            self._connect_transport()
        except BaseException:
            self.stop()
            raise
        self.timings.start_to_ready = time.monotonic() - t0
        self.state = GuestState.READY
        return self

    def stop(self) -> None:
        """Power off: close channels, stop QEMU, keep the console log.  Safe to call twice."""
        self._teardown()
        shutil.rmtree(self._sock_dir, ignore_errors=True)
        _live_run_dirs.discard(self.run_dir)
        if self.state not in (GuestState.CRASHED, GuestState.BROKEN):
            self.state = GuestState.STOPPED

    # ----------------------------------------------------------------- commands
    @property
    def console(self) -> AgentConsole:
        channel = self._ssh if self.options.transport == "ssh" else self._serial
        if channel is None or self.state not in (GuestState.READY, GuestState.BOOTED):
            raise GuestError("the guest is not running", state=self.state.value,
                             log_path=str(self.console_log))
        return channel

    def run(self, command: str, timeout: float = 30.0, must_succeed: bool = False,
            isolate: bool = True) -> CommandResult:
        """Run a shell command in the guest; its output and exit status are exact.

        ``must_succeed`` raises CommandFailed on a non-zero status (the harness's own commands;
        named so that "check" keeps meaning the cross-check).  See :meth:`Console.run` for
        ``isolate`` (only for the harness's own trusted commands).
        """
        if not timeout > 0:
            raise ConfigError(f"a command timeout must be a positive number of seconds, not "
                              f"{timeout}")
        try:
            result = self.console.run(command, timeout=timeout, isolate=isolate)
        except CommandTimeout as exc:
            self.state = GuestState.BROKEN
            raise CommandTimeout(str(exc).splitlines()[0], state="hung",
                                 log_tail=self.console_tail(), log_path=str(self.console_log)) from None
        if must_succeed and not result.ok:
            raise CommandFailed(f"'{command}' exited with {result.exit_status}: "
                                f"{result.output.strip()[-2000:]}", state=self.state.value)
        return result

    def push(self, local_path: Path | str, guest_path: str, timeout: float = 60.0) -> None:
        self.console.push(local_path, guest_path, timeout=timeout)

    def read(self, guest_path: str, timeout: float = 30.0) -> bytes:
        return self.console.read(guest_path, timeout=timeout)

    @property
    def shared_memory(self) -> Path | None:
        """The host file behind the guest's ivshmem BAR 2 (None without the device): what the
        guest writes there through ioremap() is in this file at once (share=on)."""
        return self.run_dir / "shared-memory" if self.options.shared_memory_mb else None

    def shared_memory_runs(self) -> str | None:
        """What the guest's shared memory holds now, as word runs
        (:func:`kmodlab.observe.shared_memory.format_runs`); None without the device."""
        from kmodlab.observe.shared_memory import format_runs

        path = self.shared_memory
        return format_runs(path.read_bytes()) if path is not None else None

    def console_tail(self, n: int = 30) -> str:
        return self._watcher.tail(n) if self._watcher else ""

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def healthy(self) -> bool:
        """True when the guest can take commands: running, no fatal kernel report, not hung."""
        if self.state != GuestState.READY or self._qemu is None or not self._qemu.alive():
            return False
        if self._watcher is not None:
            self._watcher.poll_once()
            if self._watcher.first_fatal() is not None:
                return False
        return True

    # ----------------------------------------------------------------- internals
    def _prepare(self) -> QemuConfig:
        config, accel = prepare_qemu_config(self.kernel, self.options)
        self.timings.notes.append(f"accel={accel.accel} ({accel.reason})")
        return config

    def _launch(self, incoming: Path | None) -> None:
        assert self._config is not None
        self.state = GuestState.RESTORING if incoming else GuestState.STARTING
        if self.options.wants_ssh:
            self.ssh_port = free_port()
        paths = RunPaths(console_log=self.console_log,
                         command_socket=self._sock_dir / "cmd.sock",
                         qmp_socket=self._sock_dir / "qmp.sock",
                         ssh_port=self.ssh_port, incoming=incoming,
                         shared_memory=self.shared_memory)
        self.console_log.write_bytes(b"")
        if self.shared_memory is not None:
            # Zeros before the guest runs; a restore writes the snapshot's contents over them.
            zeroed_file(self.shared_memory, self._config.shared_memory_mb << 20)
        argv = build_argv(self.profile, self._config, paths)
        (self.run_dir / "qemu.argv").write_text(" ".join(argv) + "\n")
        self._qemu = QemuProcess(argv, self.profile.qemu_package, self.run_dir / "qemu.stderr")
        self.qemu_pids.append(self._qemu.pid)
        self._watcher = ConsoleWatcher(self.console_log).start()
        try:
            self._serial = connect_serial(paths.command_socket, timeout=10.0)
        except GuestError:
            self._raise_if_dead()
            raise
        self._serial.stream.health_check = self._raise_if_dead
        try:
            self._qmp = QMPClient(paths.qmp_socket)
        except GuestError:
            # QEMU exiting at start drops QMP first; give it a moment so that its own stderr,
            # which says why, is what the user reads.
            try:
                self._qemu.wait(2.0)
            except subprocess.TimeoutExpired:
                pass
            self._raise_if_dead()
            raise
        timeout = self.options.boot_timeout
        try:
            if incoming:
                self._serial.ping(timeout=min(timeout, 20.0))
            else:
                self._serial.wait_ready(timeout)
        except CommandTimeout:
            raise BootTimeout(
                f"the guest did not reach its command prompt within {timeout:.0f} s",
                state=self.state.value, log_tail=self.console_tail(),
                log_path=str(self.console_log)) from None
        self.state = GuestState.BOOTED

    def _try_restore(self, snap: Path) -> None:
        """Start from the snapshot entry ``snap`` if it is intact; leave the guest OFF if not.

        A snapshot that fails its size check is discarded (one warning) before QEMU sees it.
        When a restore fails anyway, the snapshot is hashed: deleted only if that proves it
        damaged, kept otherwise (the failure had another cause); either way a cold boot follows.
        """
        state, damage = usable_snapshot(snap)
        if state is None:
            if damage:
                self.timings.notes.append(f"snapshot {snap.name} damaged ({damage}); cold boot")
            return
        try:
            self._launch(incoming=state)
            self.timings.booted_from = "snapshot"
            return
        except KernelCrash:
            raise
        except (GuestError, OSError) as exc:       # OSError: QEMU dropped a socket mid-restore
            why = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        self._teardown()
        damage = snapshot_damage(snap)
        if damage:
            note = f"snapshot {snap.name} failed to restore ({why}) and is damaged ({damage}); deleted; cold boot"
        else:
            note = f"snapshot {snap.name} failed to restore ({why}); it is intact, so kept; cold boot"
            log.warning(note)
        self.timings.notes.append(note)
        self._reset_for_retry()

    def _save_snapshot(self, path: Path) -> None:
        assert self._qmp is not None
        try:
            self.timings.snapshot_save = save_snapshot(self._qmp, path)
        except (GuestError, OSError) as exc:
            note = f"could not save a snapshot: {exc}"
            log.warning(note)
            self.timings.notes.append(note)
        status = self._qmp.execute("query-status")
        if status.get("status") != "running":
            self._qmp.execute("cont")

    def _connect_transport(self) -> None:
        if self.options.transport != "ssh":
            return
        from kmodlab.channel.ssh import connect_ssh  # paramiko: only the ssh transport pays
        from kmodlab.images import ssh_client_key_path

        assert self.ssh_port is not None
        self._ssh = connect_ssh(self.ssh_port, ssh_client_key_path(),
                                timeout=max(10.0, self.options.boot_timeout / 2))
        self._ssh.stream.health_check = self._raise_if_dead

    def _raise_if_dead(self) -> None:
        """Health check run while waiting on the guest: turn a dead kernel into KernelCrash."""
        watcher, qemu = self._watcher, self._qemu
        if watcher is None or qemu is None:
            return
        event = watcher.first_fatal()
        if event is None and not qemu.alive():
            watcher.poll_once()
            event = watcher.first_fatal()
            if event is None:
                self.state = GuestState.CRASHED
                raise GuestError(
                    f"QEMU exited with status {qemu.exit_status()}: "
                    f"{qemu.stderr_text().strip()[-1500:]}",
                    state=self.state.value, log_tail=watcher.tail(), log_path=str(self.console_log))
        if event is not None:
            previous = self.state
            self.state = GuestState.CRASHED
            excerpt = watcher.excerpt(event)
            raise KernelCrash(event.kind, excerpt, state=f"{previous.value} -> crashed",
                              log_tail=excerpt, log_path=str(self.console_log))

    def _teardown(self) -> None:
        for channel in (self._ssh, self._serial):
            if channel is not None:
                try:
                    channel.close()
                except Exception as exc:  # noqa: BLE001 - closing a dead channel must not mask the cause
                    log.debug("closing a channel failed: %s", exc)
        if self._qmp is not None:
            self._qmp.close()
        if self._qemu is not None:
            self._qemu.stop()
        if self._watcher is not None:
            self._watcher.stop()
        self._ssh = self._serial = None
        self._qmp = None
        self._qemu = None

    def _reset_for_retry(self) -> None:
        self._watcher = None
        self.state = GuestState.OFF


ICOUNT_ARGS = ("-icount", "shift=0,sleep=off")
"""One nanosecond of guest time per instruction, idle periods skipped (docs/qemu-options)."""


def prepare_qemu_config(kernel: Kernel, options: GuestOptions, *,
                        interactive: bool = False) -> tuple[QemuConfig, AccelChoice]:
    """What a guest's QEMU needs before it starts: the kernel's .config checked against
    kconfig/, the initramfs (cached), the accelerator.  Shared by Guest and ``kmodlab boot``."""
    from kmodlab.images import build_initramfs

    if not kernel.boot_image.is_file():
        raise ProvisionError(
            f"kernel {kernel.release}: its boot image {kernel.boot_image} is missing; the cache "
            f"entry {kernel.root} is damaged: delete it and fetch the kernel again "
            f"(kmodlab kernels fetch --arch {kernel.arch} --kernel {kernel.release})")
    if options.check_config:
        from kmodlab.kernels import require_kernel_config

        require_kernel_config(kernel)
    accel = choose_accel(arch_profile(kernel.arch), options.accel)
    config = QemuConfig(kernel_image=kernel.boot_image, initrd=build_initramfs(kernel, ssh=True),
                        memory_mb=options.memory_mb, cpus=options.cpus, accel=accel.accel,
                        ssh=options.wants_ssh, interactive=interactive,
                        extra_cmdline=(*kernel.boot_cmdline, *options.extra_cmdline),
                        extra_args=ICOUNT_ARGS if options.idle_skips_time else (),
                        shared_memory_mb=options.shared_memory_mb,
                        cpu=arch_profile(kernel.arch).tcg_cpu(kernel.page_size))
    if options.idle_skips_time and accel.accel != "tcg":
        raise ConfigError(f"a guest whose idle time is skipped needs TCG (QEMU's -icount), not "
                          f"{accel.accel}: use --accel tcg")
    return config, accel


def zeroed_file(path: Path, size: int) -> Path:
    """A fresh sparse file of ``size`` zero bytes at ``path`` (a shared memory backend)."""
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(size)
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1, so parallel guests never collide on the forward."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _new_run_dir(label: str) -> Path:
    """A fresh ``runs/<label>-<stamp>-<pid>-<n>`` folder.  Beyond the newest KEEP_RUN_DIRS, old
    folders are removed unless their process is alive (this process's running guests too)."""
    root = cache_dir("runs")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{label}-{stamp}-{os.getpid()}-{next(_run_counter)}"
    path.mkdir(parents=True)
    sweep_run_dirs(root, KEEP_RUN_DIRS, in_use=_live_run_dirs | {path})
    return path


_last_sweep = 0.0
SWEEP_INTERVAL = 60.0


def _sweep_leftovers() -> None:
    """What killed runs left: partial cache entries, socket folders, old-layout snapshots.

    A few directory listings, at most once a minute per process."""
    global _last_sweep
    if _last_sweep and time.monotonic() - _last_sweep < SWEEP_INTERVAL:
        return
    _last_sweep = time.monotonic()
    try:
        sweep()
        sweep_legacy_snapshots()
    except OSError as exc:         # sweeping is housekeeping: it never stops a guest
        log.debug("sweeping stale cache leftovers failed: %s", exc)


__all__ = ["Guest", "GuestOptions", "GuestState", "prepare_qemu_config"]
