"""Real slab state of a kernel, saved once from a booted guest, for merge predictions.

Whether ``kmem_cache_create()`` merges a new cache depends on which caches already exist
(mm/slab_common.c:find_mergeable() scans ``slab_caches``).  The model knows the kmalloc caches,
but those are never merge targets; the candidates are the other caches the kernel and its
drivers created at boot.  A capture records them:

* ``/proc/slabinfo``: every cache's name and s->size, newest first;
* the symlinks of ``/sys/kernel/slab``: mm/slub.c:sysfs_slab_add() names the directory of a
  *mergeable* cache after its unique id (create_unique_id(): ``:[dDaFA]-<size>``) and links
  each cache name to it, while an unmergeable cache gets a directory of its own name.  So a
  unique-id directory is a merge target and its letters are its SLAB_MERGE_SAME flags.

Captures live in ``cache_dir("captures")/<release>/``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab.kernels.kernel import Kernel
from kmodlab.model.slab import MergeCandidate, SlabFlag
from kmodlab.observe import SlabInfo, parse_slabinfo
from kmodlab.paths import cache_dir

if TYPE_CHECKING:
    from kmodlab.guest import Guest

SLABINFO = "slabinfo.txt"
ALIASES = "slab-aliases.txt"
META = "capture.json"

# The guest command that prints "<name> <target>" for every symlink of /sys/kernel/slab.
ALIASES_COMMAND = ("cd /sys/kernel/slab && for f in *; do [ -L \"$f\" ] && "
                   "echo \"$f $(readlink \"$f\")\"; done; true")

_UNIQUE_ID = re.compile(r"^:(?:(?P<letters>[dDaFA]+)-)?(?P<size>\d{7})$")
_LETTER_FLAGS = {"d": SlabFlag.CACHE_DMA, "D": SlabFlag.CACHE_DMA32,
                 "a": SlabFlag.RECLAIM_ACCOUNT, "F": SlabFlag.CONSISTENCY_CHECKS,
                 "A": SlabFlag.ACCOUNT}


@dataclass(frozen=True)
class SlabCapture:
    """One kernel's slab caches at one moment."""

    release: str
    slabinfo: SlabInfo
    aliases: dict[str, str]        # cache name -> unique id directory it links to
    taken: str                     # when, ISO 8601 (UTC)

    def merge_candidates(self) -> list[MergeCandidate]:
        """Existing merge targets, oldest first (the order find_mergeable() scans).  A unique
        id's owner is the oldest listed cache linking to it: later caches of the class merged
        into it and have no slabinfo line of their own."""
        out: list[MergeCandidate] = []
        owned: set[str] = set()
        for name in reversed(list(self.slabinfo.caches)):   # slabinfo lists newest first
            uid = self.aliases.get(name)
            parsed = parse_unique_id(uid) if uid and uid not in owned else None
            if parsed is None:
                continue
            owned.add(uid)  # type: ignore[arg-type]
            size, flags = parsed
            out.append(MergeCandidate(name, size, flags, True))
        return out


def parse_unique_id(uid: str) -> tuple[int, SlabFlag] | None:
    """``":A-0000104"`` -> (104, SLAB_ACCOUNT); None for anything else."""
    m = _UNIQUE_ID.match(uid)
    if not m:
        return None
    flags = SlabFlag.NONE
    for letter in m["letters"] or "":
        flags |= _LETTER_FLAGS[letter]
    return int(m["size"]), flags


def parse_aliases(text: str) -> dict[str, str]:
    """Lines ``"<name> <link target>"`` -> {name: unique id} (the target's last component)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1].rstrip("/").rsplit("/", 1)[-1]
    return out


def capture_dir(release: str) -> Path:
    return cache_dir("captures", release)


def save_capture(release: str, slabinfo_text: str, aliases_text: str) -> Path:
    """Store a capture (the slabinfo must parse: a broken capture is refused, not kept)."""
    parse_slabinfo(slabinfo_text)
    directory = capture_dir(release)
    (directory / SLABINFO).write_text(slabinfo_text)
    (directory / ALIASES).write_text(aliases_text)
    taken = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (directory / META).write_text(json.dumps({"release": release, "taken": taken}))
    return directory


def load_capture(release: str) -> SlabCapture | None:
    """The stored capture of ``release``, or None if there is none (or it is unreadable)."""
    directory = cache_dir("captures") / release
    try:
        slabinfo = parse_slabinfo((directory / SLABINFO).read_text())
        aliases = parse_aliases((directory / ALIASES).read_text())
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return None
    return SlabCapture(release, slabinfo, aliases, str(meta.get("taken", "")))


def capture_from_guest(guest: Guest, kernel: Kernel) -> Path:
    """Read /proc/slabinfo and the /sys/kernel/slab links in a running guest; store them."""
    slabinfo = guest.run("cat /proc/slabinfo", isolate=False, must_succeed=True).stdout
    aliases = guest.run(ALIASES_COMMAND, isolate=False, must_succeed=True).stdout
    return save_capture(kernel.release, slabinfo, aliases)
