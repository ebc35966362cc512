"""procps ``vmstat -m`` as the guest printed it (a recorded x86_64 6.1 run): its table, headers
repeated every 21 rows, names cut to 24 characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.check.replay import read_recording
from kmodlab.observe.errors import ParseError
from kmodlab.observe.vmstat_slabs import NAME_WIDTH, parse_vmstat_slabs

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "check" / "x86_64-6.1"
TEXT = read_recording(FIXTURE / "kmem_cache.json.gz")["between"]["vmstat"]


def test_every_row_is_read_and_repeated_headers_are_not_rows() -> None:
    lines = [x for x in TEXT.splitlines() if x.strip()]
    headers = [x for x in lines if x.startswith("Cache ")]
    assert len(headers) > 1                      # not a terminal: a header every 21 rows
    table = parse_vmstat_slabs(TEXT)
    assert len(table.rows) == len(lines) - len(headers)
    row = table.row_for("kml_cache")
    assert row is not None and (row.num, row.size) == (100, 128)


def test_a_long_name_is_found_by_its_cut_and_an_ambiguous_cut_by_nothing() -> None:
    long_a, long_b = "x" * NAME_WIDTH + "_a", "x" * NAME_WIDTH + "_b"
    header = "Cache                       Num  Total   Size  Pages\n"
    one = parse_vmstat_slabs(header + f"{long_a[:NAME_WIDTH]}     1      2     64     64\n")
    assert one.row_for(long_a) is not None
    two = parse_vmstat_slabs(header + f"{long_a[:NAME_WIDTH]}     1      2     64     64\n"
                             f"{long_b[:NAME_WIDTH]}     3      4     64     64\n")
    assert two.row_for(long_a) is None and two.row_for(long_b) is None


@pytest.mark.parametrize("text", ["", "vmstat: not found\n",
                                  TEXT + "kml_cache  twelve  1 2 3\n",
                                  "\n".join(TEXT.splitlines()[1:3])])
def test_anything_but_vmstats_table_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_vmstat_slabs(text)
