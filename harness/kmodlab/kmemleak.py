"""kmemleak, the kernel's own leak detector, on kernels built with it (CONFIG_DEBUG_KMEMLEAK).

kmodlab's leak detector (:mod:`kmodlab.leaks`) compares /proc before and after; small leaks drown
in the allocators' idle drift.  kmemleak instead finds each allocated object no pointer refers
to any more, and records who allocated it.  As Documentation/dev-tools/kmemleak.rst advises for
modules, the scan runs after the module is unloaded; what it reports is then charged to the
module through the allocation backtrace.  Frames of a module that is gone print as bare
addresses, so they are named from the module's :class:`~kmodlab.leaks.Footprint` (its
addresses, recorded while it was loaded), in the ``func+0x1c/0x60 [module]`` form the
symbolizer turns into file:line.

Facts (mm/kmemleak.c, 6.1 and 6.12): an object younger than ``MSECS_MIN_AGE`` (5000 ms) is
never reported, so the report waits until the load is that old; an object is reported only
when its checksum did not change since the previous scan (update_checksum() in
kmemleak_scan()), so a leak shows on the second scan, not the first (measured: the first scan
after rmmod reports nothing); ``echo clear`` marks the current suspects as seen, so earlier ones
(the boot's own) are not charged to the next module; the debugfs file lists suspects in
print_unreferenced()'s format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kmodlab.leaks import Footprint, Leak

if TYPE_CHECKING:
    from kmodlab.guest import Guest

DEBUGFS = "/sys/kernel/debug/kmemleak"
MIN_AGE = 5.0
"""Seconds an object must have lived before kmemleak reports it (mm/kmemleak.c MSECS_MIN_AGE)."""
SCAN_TIMEOUT = 120.0
"""A scan walks all of memory: ~5.5 s for a 512 MiB KASAN guest under TCG (measured)."""

_OBJECT = re.compile(r"^unreferenced object (?P<address>0x[0-9a-f]+) \(size (?P<size>\d+)\):")
_COMM = re.compile(r'^\s+comm "(?P<comm>[^"]*)", pid (?P<pid>\d+)')
# 6.1: "    [<ffffffffa0005022>] func+0x1f/0x40" ("[<(____ptrval____)>]" where %p hashes
# pointers, lib/vsprintf.c); 6.12 prints the frames alone ("    func+0x1f/0x40") under
# "backtrace (crc ...):" (print_unreferenced() with stack_depot_print-style frames).  A frame of
# a module that is gone is a bare address either way.
_FRAME = re.compile(r"^\s+(?:\[<[^>]*>\] )?(?P<frame>[\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+"
                    r"(?: \[\w+\])?|0x[0-9a-f]+)\s*$")
_RAW = re.compile(r"^0x(?P<addr>[0-9a-f]+)$")


@dataclass(frozen=True)
class Unreferenced:
    """One object kmemleak found no reference to."""

    address: str
    size: int
    comm: str
    pid: int
    frames: tuple[str, ...]      # the allocation backtrace, innermost first

    def frames_of(self, module: str) -> tuple[str, ...]:
        return tuple(f for f in self.frames if f.endswith(f" [{module}]"))


def parse_kmemleak(text: str) -> list[Unreferenced]:
    """The suspects in the debugfs file's text (or the console's, ``kmemleak: `` prefixes and
    timestamps allowed)."""
    from kmodlab.observe.dmesg import strip_prefixes

    out: list[Unreferenced] = []
    current: dict | None = None
    for raw in strip_prefixes(text).splitlines():
        line = raw.removeprefix("kmemleak: ")
        if m := _OBJECT.match(line):
            if current is not None:
                out.append(Unreferenced(**current))
            current = {"address": m["address"], "size": int(m["size"]), "comm": "", "pid": 0,
                       "frames": ()}
        elif current is not None and (m := _COMM.match(line)):
            current["comm"], current["pid"] = m["comm"], int(m["pid"])
        elif current is not None and (m := _FRAME.match(line)):
            current["frames"] = (*current["frames"], m["frame"])
    if current is not None:
        out.append(Unreferenced(**current))
    return out


def name_frames(obj: Unreferenced, footprint: Footprint | None) -> Unreferenced:
    """Bare addresses that lay in the (now unloaded) module, named ``func+off/size [module]``."""
    if footprint is None or not footprint.known:
        return obj
    frames = []
    for frame in obj.frames:
        m = _RAW.match(frame)
        address = int(m["addr"], 16) if m else None
        named = footprint.symbolize(address) if address is not None else None
        frames.append(f"{named} [{footprint.module}]" if named else frame)
    return Unreferenced(obj.address, obj.size, obj.comm, obj.pid, tuple(frames))


def start(guest: Guest) -> bool:
    """Before insmod: clear the earlier suspects; False when kmemleak is not there and on (not
    built in, debugfs not mounted, disabled at boot)."""
    return guest.run(f"test -w {DEBUGFS} && echo clear > {DEBUGFS}", isolate=False).ok


def scan(guest: Guest) -> list[Unreferenced]:
    """After rmmod: two scans (the first records checksums, the second reports), the second
    once ``MIN_AGE`` has passed in the guest's own time since the first; then read the
    suspects and clear them.

    kmemleak reports only objects older than MIN_AGE at the scan (mm/kmemleak.c:
    unreferenced_object(), in jiffies), and every object the module allocated, at load or at
    unload, exists by the first scan, so the wait starts there.  Starting it earlier (at
    insmod) misses leaks when the load itself is slow: under TCG a KASAN kernel's load and
    its /proc snapshots take seconds.  The guest's uptime is the clock, since its jiffies
    can fall behind the host's under TCG."""
    result = guest.run(f"echo scan > {DEBUGFS} && cat /proc/uptime", isolate=False,
                       must_succeed=True, timeout=SCAN_TIMEOUT)
    ready = float(result.stdout.split()[0]) + MIN_AGE + 0.5
    wait = (f"while awk -v r={ready:.2f} '{{exit !($1 < r)}}' /proc/uptime; do sleep 0.2; done")
    result = guest.run(f"{wait}; echo scan > {DEBUGFS} && cat {DEBUGFS} && "
                       f"echo clear > {DEBUGFS}", isolate=False, must_succeed=True,
                       timeout=SCAN_TIMEOUT + MIN_AGE)
    return parse_kmemleak(result.stdout)


def module_leaks(objects: list[Unreferenced], module: str, footprint: Footprint | None,
                 source: Callable[[str], str] | None = None) -> list[Leak]:
    """One :class:`Leak` per allocation site of ``module`` among kmemleak's suspects;
    ``source`` turns a frame into ``frame at file.c:42`` (the module's debug info)."""
    sites: dict[str, list[Unreferenced]] = {}
    for obj in objects:
        named = name_frames(obj, footprint)
        mine = named.frames_of(module)
        if mine:
            sites.setdefault(mine[0], []).append(named)
    return [Leak("kmemleak", source(site) if source else site, len(found), "object",
                 sum(o.size for o in found),
                 detail=f"kmemleak: unreferenced, allocated at {site} "
                        f"({', '.join(str(o.size) + ' bytes' for o in found[:4])}"
                        f"{', ...' if len(found) > 4 else ''})")
            for site, found in sites.items()]


__all__ = ["DEBUGFS", "MIN_AGE", "Unreferenced", "module_leaks", "name_frames",
           "parse_kmemleak", "scan", "start"]
