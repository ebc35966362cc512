"""/proc/meminfo as numbers.

Producer: fs/proc/meminfo.c:meminfo_proc_show(): ``show_val_kb()`` prints ``"<Key>: %8lu kB"``;
the HugePages_* counters are printed without a unit (they count pages, not kB).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from kmodlab.observe.errors import ParseError

SOURCE = "/proc/meminfo"
_LINE = re.compile(r"^(?P<key>[A-Za-z0-9_()]+):\s+(?P<value>\d+)(?:\s+(?P<unit>kB))?\s*$")


@dataclass(frozen=True)
class MemInfo(Mapping[str, int]):
    """Key -> value as printed: kB for most keys, a plain count for the keys in ``unitless``."""

    data: dict[str, int]
    unitless: frozenset[str]

    def __getitem__(self, key: str) -> int:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def kb(self, key: str) -> int:
        if key in self.unitless:
            raise KeyError(f"{key} is a count, not a size in kB")
        return self.data[key]

    def bytes(self, key: str) -> int:
        return self.kb(key) * 1024


def parse_meminfo(text: str) -> MemInfo:
    values: dict[str, int] = {}
    unitless: set[str] = set()
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise ParseError(SOURCE, line_no, line, "expected '<Key>: <number> [kB]'")
        key = m.group("key")
        if key in values:
            raise ParseError(SOURCE, line_no, line, f"key {key!r} appears twice")
        values[key] = int(m.group("value"))
        if m.group("unit") is None:
            unitless.add(key)
    if not values:
        raise ParseError(SOURCE, 1, text[:80], "no lines")
    return MemInfo(values, frozenset(unitless))


def diff_meminfo(before: MemInfo, after: MemInfo) -> dict[str, int]:
    """after - before for every key present in both captures whose value changed."""
    return {k: after[k] - before[k] for k in after if k in before and after[k] != before[k]}


# Short names for module-qualified use: ``slabinfo.parse(text)``, ``slabinfo.diff(a, b)``.
parse = parse_meminfo
diff = diff_meminfo
