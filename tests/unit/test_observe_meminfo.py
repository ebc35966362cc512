"""/proc/meminfo parser (fs/proc/meminfo.c)."""

from __future__ import annotations

import pytest

from kmodlab.observe import ParseError, diff_meminfo, parse_meminfo

TEXT = """MemTotal:        1004548 kB
MemFree:          905320 kB
Active(anon):       1240 kB
Percpu:              520 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def test_parses_kb_and_counts() -> None:
    info = parse_meminfo(TEXT)
    assert info["MemTotal"] == 1004548 and info.kb("Active(anon)") == 1240
    assert info.bytes("Percpu") == 520 * 1024
    assert info.unitless == {"HugePages_Total"}
    with pytest.raises(KeyError):
        info.kb("HugePages_Total")


@pytest.mark.parametrize("text, problem", [
    ("MemTotal 100 kB\n", "expected"),
    ("MemTotal: lots kB\n", "expected"),
    ("MemTotal: 100 MB\n", "expected"),
    ("MemTotal: 1 kB\nMemTotal: 2 kB\n", "twice"),
    ("", "no lines"),
])
def test_rejects_malformed(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        parse_meminfo(text)


def test_diff() -> None:
    after = parse_meminfo(TEXT.replace("Percpu:              520", "Percpu:              528"))
    assert diff_meminfo(parse_meminfo(TEXT), after) == {"Percpu": 8}


def test_module_short_names() -> None:
    from kmodlab.observe import buddyinfo, meminfo, slabinfo, vmallocinfo
    assert meminfo.parse(TEXT)["Percpu"] == 520 and meminfo.diff is diff_meminfo
    assert slabinfo.parse is not None and buddyinfo.diff is not None and vmallocinfo.parse
