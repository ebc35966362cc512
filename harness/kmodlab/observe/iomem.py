"""/proc/iomem as typed entries: the physical address map and who claimed what.

Producer: kernel/resource.c:r_show(): one line per struct resource, ``"%*s%0*llx-%0*llx : %s"``
indented by two spaces per level of nesting; a driver's pci_request_region() nests its name
under the BAR's ``0000:00:03.0`` line.  Read by root (without CAP_SYS_ADMIN the addresses are 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kmodlab.observe.errors import ParseError

SOURCE = "/proc/iomem"
_LINE = re.compile(r"^(?P<indent> *)(?P<start>[0-9a-f]+)-(?P<end>[0-9a-f]+) : (?P<name>.*)$")


@dataclass(frozen=True)
class IomemEntry:
    start: int
    end: int          # inclusive, as printed
    name: str
    depth: int        # nesting level (0: top)

    @property
    def size(self) -> int:
        return self.end - self.start + 1


def parse_iomem(text: str) -> list[IomemEntry]:
    out: list[IomemEntry] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ParseError(SOURCE, n, line, "not '<start>-<end> : <name>'")
        out.append(IomemEntry(int(m["start"], 16), int(m["end"], 16), m["name"],
                              len(m["indent"]) // 2))
    return out


def claimed_by(entries: list[IomemEntry], name: str) -> list[IomemEntry]:
    """The ranges a driver or module claimed under ``name``."""
    return [e for e in entries if e.name == name]
