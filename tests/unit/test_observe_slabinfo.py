"""/proc/slabinfo parser: columns, header check, malformed lines, diff."""

from __future__ import annotations

import pytest

from kmodlab.observe import ParseError, diff_slabinfo, parse_slabinfo

HEADER = ("slabinfo - version: 2.1\n"
          "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>"
          " : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs>"
          " <sharedavail>\n")
# mm/slab_common.c:cache_show() format; "ap_plain100 39 39 104 39 1" was seen on a booted kernel.
LINE = ("%-17s %6lu %6lu %6u %4u %4d : tunables %4u %4u %4u : slabdata %6lu %6lu %6lu")


def line(name: str, active: int, num: int, size: int, per: int, pages: int, slabs: int) -> str:
    return LINE % (name, active, num, size, per, pages, 0, 0, 0, slabs, slabs, 0)


def test_parses_columns() -> None:
    info = parse_slabinfo(HEADER + line("ap_plain100", 39, 39, 104, 39, 1, 1) + "\n"
                          + line("kmalloc-8k", 60, 64, 8192, 4, 8, 16) + "\n")
    c = info["ap_plain100"]
    assert (c.active_objs, c.num_objs, c.objsize, c.objperslab, c.pagesperslab) == (39, 39, 104, 39, 1)
    assert (c.active_slabs, c.num_slabs, c.order) == (1, 1, 0)
    assert info["kmalloc-8k"].order == 3 and info["kmalloc-8k"].free_objs == 4
    assert list(info) == ["ap_plain100", "kmalloc-8k"]       # kernel order kept


def test_long_names_and_names_with_spaces() -> None:
    text = HEADER + line("a_very_long_cache_name_indeed", 1, 2, 64, 64, 1, 1) + "\n" \
        + line("odd name", 0, 0, 64, 64, 1, 0) + "\n"
    info = parse_slabinfo(text)
    assert "a_very_long_cache_name_indeed" in info and "odd name" in info


def test_duplicate_names_are_kept_apart() -> None:
    text = HEADER + line("ap_leak200", 3, 20, 200, 20, 1, 1) + "\n" \
        + line("ap_leak200", 0, 0, 200, 20, 1, 0) + "\n"
    info = parse_slabinfo(text)
    assert info["ap_leak200"].num_objs == 20 and info["ap_leak200#2"].num_objs == 0
    assert info.duplicates == ("ap_leak200",)


@pytest.mark.parametrize("text, problem", [
    ("slabinfo - version: 2.0\n# name\n", "header"),
    ("", "header"),
    ("slabinfo - version: 2.1\nkmalloc-8 1 1 8 512 1 : tunables 0 0 0 : slabdata 1 1 0\n",
     "column header"),
    (HEADER + "kmalloc-8 1 1 8 512 : tunables 0 0 0 : slabdata 1 1 0\n", "5 numbers"),
    (HEADER + "kmalloc-8 1 1 8 512 1 : tunables 0 0 : slabdata 1 1 0\n", "tunables"),
    (HEADER + "kmalloc-8 1 1 8 512 1 : slabdata 1 1 0\n", "tunables"),
    (HEADER + "kmalloc-8 9 1 8 512 1 : tunables 0 0 0 : slabdata 1 1 0\n", "active_objs"),
    (HEADER + "kmalloc-8 1 1 8 512 3 : tunables 0 0 0 : slabdata 1 1 0\n", "power of two"),
    (HEADER + "kmalloc-8 1 x 8 512 1 : tunables 0 0 0 : slabdata 1 1 0\n", "integers"),
])
def test_rejects_malformed(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem) as err:
        parse_slabinfo(text)
    assert "line " in str(err.value)


def test_error_names_line_number() -> None:
    text = HEADER + line("good", 1, 1, 8, 512, 1, 1) + "\nbroken line\n"
    with pytest.raises(ParseError) as err:
        parse_slabinfo(text)
    assert err.value.line_no == 4 and err.value.line == "broken line"


def test_diff() -> None:
    before = parse_slabinfo(HEADER + line("kmalloc-192", 100, 105, 192, 21, 1, 5) + "\n"
                            + line("gone", 1, 1, 64, 64, 1, 1) + "\n"
                            + line("same", 1, 1, 64, 64, 1, 1) + "\n")
    after = parse_slabinfo(HEADER + line("kmalloc-192", 105, 126, 192, 21, 1, 6) + "\n"
                           + line("ap_plain100", 39, 39, 104, 39, 1, 1) + "\n"
                           + line("same", 1, 1, 64, 64, 1, 1) + "\n")
    d = diff_slabinfo(before, after)
    assert set(d.appeared) == {"ap_plain100"} and set(d.disappeared) == {"gone"}
    delta = d.changed["kmalloc-192"]
    assert (delta.active_objs, delta.num_objs, delta.num_slabs) == (5, 21, 1)
    assert not delta.geometry_changed and "same" not in d.changed
    assert not diff_slabinfo(after, after)
