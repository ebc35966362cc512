"""The CMA areas a kernel reserved at boot, from its log.

Producer: mm/cma.c:cma_declare_contiguous_nid(): ``pr_info("Reserved %ld MiB at %pa ...")``
with pr_fmt "cma: " (6.12+ adds `` on node %d``).  /proc/meminfo's CmaTotal says how much, not
where; the log line is the only place a stock kernel says where.
"""

from __future__ import annotations

import re

_RESERVED = re.compile(r"cma: Reserved (?P<mib>\d+) MiB at (?P<base>0x[0-9a-fA-F]+)")


def cma_areas(log: str) -> list[tuple[int, int]]:
    """(base, size in bytes) of every area the log reports, in order."""
    return [(int(m["base"], 16), int(m["mib"]) << 20) for m in _RESERVED.finditer(log)]
