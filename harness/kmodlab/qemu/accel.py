"""Choose the accelerator: KVM only when it really works, TCG otherwise.

``/dev/kvm`` existing proves nothing: without nested virtualisation QEMU hangs or fails with
``failed to set MSR``.  So we boot SeaBIOS/firmware for a moment under KVM and look for a sign of
life; the verdict is cached for the host's boot (``/proc/sys/kernel/random/boot_id``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

from kmodlab.paths import cache_dir
from kmodlab.registry.arch import ArchProfile

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class AccelChoice:
    accel: str   # "kvm" or "tcg"
    reason: str


def choose_accel(profile: ArchProfile, requested: str = "auto") -> AccelChoice:
    if requested == "tcg":
        return AccelChoice("tcg", "requested")
    usable, why = kvm_usable(profile)
    if requested == "kvm":
        if not usable:
            from kmodlab.errors import ConfigError
            raise ConfigError(f"--accel kvm requested but KVM is not usable here: {why}")
        return AccelChoice("kvm", "requested")
    choice = AccelChoice("kvm", why) if usable else AccelChoice("tcg", why)
    log.info("accelerator: %s (%s)", choice.accel, choice.reason)
    return choice


def kvm_usable(profile: ArchProfile) -> tuple[bool, str]:
    if platform.machine() not in profile.kvm_host_machines:
        return False, f"guest arch {profile.name} differs from host {platform.machine()}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not accessible"
    cache_file = cache_dir("state") / "kvm-probe.json"
    boot_id = _boot_id()
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("boot_id") == boot_id and cached.get("arch") == profile.name:
            return cached["usable"], cached["reason"] + " (cached probe)"
    except (OSError, ValueError, KeyError):
        pass
    usable, reason = _probe_kvm(profile)
    cache_file.write_text(json.dumps({"boot_id": boot_id, "arch": profile.name,
                                      "usable": usable, "reason": reason}))
    return usable, reason


def _probe_kvm(profile: ArchProfile) -> tuple[bool, str]:
    """Run the firmware under KVM for up to 5 s: it prints its banner (the profile's
    ``kvm_probe_sign``) only if KVM really runs guest code."""
    qemu = shutil.which(profile.qemu_binary)
    if qemu is None:
        return False, f"{profile.qemu_binary} not installed"
    argv = [qemu, "-accel", "kvm", "-machine", profile.machine, "-cpu", profile.kvm_cpu,
            "-nodefaults", "-display", "none", "-m", "64", "-no-reboot",
            *profile.kvm_probe_args]
    sign = profile.kvm_probe_sign.encode()
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=5, stdin=subprocess.DEVNULL,
                              check=False)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"") + (exc.stderr or b"")
    if sign in output:
        return True, "KVM probe booted the firmware"
    detail = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output in 5 s"]
    return False, f"KVM probe failed: {detail[0][:200]}"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown"
