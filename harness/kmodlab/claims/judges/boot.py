"""Claims about boot-time memory: what a module can and cannot do about it (kmodlab's own
kml_boot module, in a guest booted with a crashkernel= reservation)."""

from __future__ import annotations

import re
from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, int_value, register, size_text
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget

R_BOOT = ("mm/memblock.c: memblock_alloc*() are __init or not exported (include/linux/"
          "memblock.h), and kernel/module/main.c:do_init_module() runs after "
          "init/main.c:kernel_init() set system_state = SYSTEM_RUNNING; kernel/crash_core.c "
          "(crashkernel=) reserves at boot and names the area \"Crash kernel\" in /proc/iomem")
_SIZE = re.compile(r"^(\d+)([KMG]?)$", re.IGNORECASE)


def crashkernel_bytes(cmdline: list[str]) -> int:
    """The size a plain ``crashkernel=<size>`` asks for (kernel/crash_core.c:parse_crashkernel()
    with memparse(); the ranges and offset forms are not used here)."""
    size = 0
    for word in cmdline:
        if word.startswith("crashkernel="):
            m = _SIZE.match(word.split("=", 1)[1])
            if m is None:
                raise ValueError(f"{word!r}: only crashkernel=<size> is modelled")
            size = int(m[1]) << {"": 0, "k": 10, "m": 20, "g": 30}[m[2].lower()]
    return size


@register
class BootMemoryBuiltinOnly(Judge):
    """"Only code linked into the kernel can allocate memory at boot time"."""

    name = "boot_memory_builtin_only"

    def model(self, target: ModelTarget, *, cmdline: list[str], **_: Any) -> Finding:
        size = crashkernel_bytes(cmdline)
        return Finding("true", f"crashkernel {size_text(size)}",
                       "yes: the boot allocator (memblock) is done before any module loads "
                       "and is not exported to modules; a driver in a module gets boot-time "
                       f"memory by asking on the command line: {' '.join(cmdline)} reserves "
                       f"{size_text(size)} the kernel shows as \"Crash kernel\" in /proc/iomem "
                       "(cma=, mem= and memmap= are the others)", R_BOOT,
                       short="yes: modules load after boot; they ask for boot-time memory with "
                             "parameters (crashkernel=, cma=, memmap=)")

    def measured(self, target: ModelTarget, obs: Observations, *, cmdline: list[str],
                 probe: str, **_: Any) -> Finding | None:
        alloc = obs.values(probe, "boot_allocator")
        res = obs.values(probe, "reservations")
        exported, booting = int_value(alloc, "memblock_exported"), int_value(alloc, "booting")
        reserved = int_value(res, "crashkernel_bytes")
        if exported is None or booting is None or reserved is None:
            return None
        want = crashkernel_bytes(cmdline)
        ok = exported == 0 and booting == 0 and reserved == want
        answer = (f"memblock's allocator {'is' if exported else 'is not'} exported, the system "
                  f"{'is still' if booting else 'is no longer'} booting when the module loads, "
                  f"and the boot-time crashkernel= area is {size_text(reserved)}")
        return Finding("true" if ok else "false", f"crashkernel {size_text(reserved)}", answer,
                       f"{probe}/boot_allocator + reservations", ok)
