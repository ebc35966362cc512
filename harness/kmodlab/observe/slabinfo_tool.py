"""The per-cache report of the kernel's slabinfo tool (``slabinfo '^<cache>$'``).

When its pattern matches exactly one cache, tools/mm/slabinfo.c:report() prints a table whose
columns are sizes, slab counts, debug switches and memory, e.g.::

    Slabcache: kmalloc-64       Aliases:  0 Order :  0 Objects: 1533
    ...
    Object :      64  Total  :      26   Sanity Checks : Off  Total:  106496
    SlabObj:      64  Full   :      20   Redzoning     : Off  Used :   98112
    SlabSiz:    4096  Partial:       4   Poisoning     : Off  Loss :    8384
    Loss   :       0  CpuSlab:       2   Tracking      : Off  Lalig:       0
    Align  :      64  Objects:      64   Tracing       : Off  Lpadd:       0

Labels repeat across columns ("Total", "Loss", "Objects"), so a field is named by its column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^Slabcache:\s*(?P<name>\S+)\s+Aliases:\s*(?P<aliases>\d+)\s+"
                     r"Order\s*:\s*(?P<order>\d+)\s+Objects:\s*(?P<objects>\d+)\s*$")
_ROW = re.compile(r"^(?P<size>[A-Za-z]+)\s*:\s*(?P<size_v>-?\d+)\s+"
                  r"(?P<slabs>[A-Za-z]+)\s*:\s*(?P<slabs_v>-?\d+)\s+"
                  r"[A-Za-z ]+?\s*:\s*(?:On|Off)\s+"
                  r"(?P<mem>[A-Za-z]+)\s*:\s*(?P<mem_v>-?\d+)\s*$")

# (column, label) -> field of SlabinfoReport
_FIELDS = {
    ("size", "Object"): "object_size", ("size", "SlabObj"): "slot_size",
    ("size", "SlabSiz"): "slab_bytes", ("size", "Loss"): "loss_per_object",
    ("size", "Align"): "align",
    ("slabs", "Total"): "slabs", ("slabs", "Full"): "full_slabs",
    ("slabs", "Partial"): "partial_slabs", ("slabs", "CpuSlab"): "cpu_slabs",
    ("slabs", "Objects"): "objects_per_slab",
    ("mem", "Total"): "total_bytes", ("mem", "Used"): "used_bytes",
    ("mem", "Loss"): "loss_bytes", ("mem", "Lalig"): "lalig_bytes",
    ("mem", "Lpadd"): "lpadd_bytes",
}


@dataclass(frozen=True)
class SlabinfoReport:
    """One cache as slabinfo reports it (bytes unless named otherwise)."""

    name: str
    aliases: int
    order: int
    objects: int              # objects in use
    object_size: int          # "Object": what the cache was created for
    slot_size: int            # "SlabObj": s->size, the stride
    slab_bytes: int           # "SlabSiz": PAGE_SIZE << order
    loss_per_object: int      # "Loss" (sizes): SlabObj - Object
    align: int
    slabs: int                # "Total" (slabs)
    full_slabs: int
    partial_slabs: int
    cpu_slabs: int
    objects_per_slab: int     # "Objects" (slabs column)
    total_bytes: int          # slabs * SlabSiz
    used_bytes: int           # objects * Object
    loss_bytes: int           # Total - Used: free slots, per-object loss and slab padding
    lalig_bytes: int          # (SlabObj - Object) * objects
    lpadd_bytes: int          # (SlabSiz - objects_per_slab * SlabObj) * slabs

    @property
    def padding_per_slab(self) -> int:
        """What is left at the end of each slab (SlabSiz - objects per slab * SlabObj)."""
        return self.slab_bytes - self.objects_per_slab * self.slot_size


def parse_report(text: str) -> SlabinfoReport | None:
    """The single-cache report in ``text``; None when there is none (no cache matched, or
    several did and slabinfo printed its one-line-per-cache list instead)."""
    header: dict[str, str] | None = None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if (m := _HEADER.match(line)) is not None:
            if header is not None:
                return None                 # two reports: the pattern matched several caches
            header = m.groupdict()
            continue
        if header is None or (m := _ROW.match(line)) is None:
            continue
        for column in ("size", "slabs", "mem"):
            name = _FIELDS.get((column, m[column]))
            if name is not None:
                fields[name] = int(m[f"{column}_v"])
    if header is None or len(fields) != len(_FIELDS):
        return None
    return SlabinfoReport(name=header["name"], aliases=int(header["aliases"]),
                          order=int(header["order"]), objects=int(header["objects"]), **fields)


__all__ = ["SlabinfoReport", "parse_report"]
