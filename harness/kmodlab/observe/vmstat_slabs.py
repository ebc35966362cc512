"""Parse procps ``vmstat -m``: one row per slab cache (Cache, Num, Total, Size, Pages).

vmstat reads /proc/slabinfo (procps library/slabinfo.c) and prints, sorted by name
(procps src/vmstat.c:slabformat(), ``"%-24.24s %6u %6u %6u %6u"``):

* Cache: the name, cut to 24 characters;
* Num: active_objs; Total: num_objs; Size: objsize (s->size);
* Pages: objperslab, the objects per slab, whatever vmstat(8) says of the column ("Number of
  pages with at least one active object").

The header is printed again every ``height`` rows (a terminal's rows less 3, or 21 when stdout
is no terminal), unless ``-n``: a header inside the table is skipped, not a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kmodlab.observe.errors import ParseError

NAME_WIDTH = 24
"""vmstat cuts cache names to this many characters (the ``%-24.24s`` format)."""

_HEADER = re.compile(r"^Cache\s+Num\s+Total\s+Size\s+Pages\s*$")
_ROW = re.compile(r"^(?P<name>.{1,24}?)\s+(?P<num>\d+)\s+(?P<total>\d+)\s+(?P<size>\d+)"
                  r"\s+(?P<pages>\d+)\s*$")


@dataclass(frozen=True)
class VmstatSlab:
    """One ``vmstat -m`` row.  ``pages`` is the column so named: objects per slab."""

    name: str
    num: int
    total: int
    size: int
    pages: int


@dataclass(frozen=True)
class VmstatSlabs:
    """A ``vmstat -m`` table: rows by the name as printed, and the printed names that several
    caches share once cut to :data:`NAME_WIDTH` (no row can be told to be whose)."""

    rows: dict[str, VmstatSlab]
    ambiguous: frozenset[str]

    def row_for(self, cache: str) -> VmstatSlab | None:
        """The row of ``cache`` (found by its cut name); None when absent or ambiguous."""
        printed = cache[:NAME_WIDTH]
        return None if printed in self.ambiguous else self.rows.get(printed)


def parse_vmstat_slabs(text: str) -> VmstatSlabs:
    """Parse ``vmstat -m``; a ParseError when no header came first or a line is neither a
    header nor a row, so a changed format is never half read."""
    rows: dict[str, VmstatSlab] = {}
    ambiguous: set[str] = set()
    seen_header = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if _HEADER.match(line):
            seen_header = True
            continue
        m = _ROW.match(line)
        if not seen_header or m is None:
            raise ParseError("vmstat -m", number, line,
                             "neither a header nor a cache row" if seen_header
                             else "a row before the header")
        name = m.group("name").strip()
        if name in rows:
            ambiguous.add(name)
        rows[name] = VmstatSlab(name, int(m.group("num")), int(m.group("total")),
                                int(m.group("size")), int(m.group("pages")))
    if not seen_header:
        raise ParseError("vmstat -m", 1, text[:80],
                         "no header (Cache Num Total Size Pages)")
    return VmstatSlabs(rows, frozenset(ambiguous))


__all__ = ["NAME_WIDTH", "VmstatSlab", "VmstatSlabs", "parse_vmstat_slabs"]
