"""The shared memory's word runs and /proc/iomem, the two things the ioremap check reads besides
vmallocinfo."""

from __future__ import annotations

import pytest

from kmodlab.observe.errors import ParseError
from kmodlab.observe.iomem import claimed_by, parse_iomem
from kmodlab.observe.shared_memory import MAX_RUNS, format_runs, parse_runs, word_runs

WORD = (0x6B6D01A5).to_bytes(4, "little")


def test_runs_name_each_window_and_skip_zeros() -> None:
    data = bytes(100) + WORD * 3 + bytes(8) + (0x6B6D02A5).to_bytes(4, "little")
    runs, cut = word_runs(data)
    assert [(r.offset, r.word, r.count) for r in runs] == [(100, 0x6B6D01A5, 3),
                                                           (120, 0x6B6D02A5, 1)]
    assert not cut and runs[0].end == 112


def test_a_word_one_byte_off_is_its_own_run() -> None:
    """A stray byte must show: the check compares runs exactly."""
    data = bytearray(bytes(16) + WORD * 4)
    data[21] ^= 0xFF
    runs, _ = word_runs(bytes(data))
    assert len(runs) == 3 and runs[0].count == 1 and runs[1].word != 0x6B6D01A5


def test_text_round_trip_and_odd_tail() -> None:
    text = format_runs(bytes(8) + WORD + b"\x07")
    assert text == "size 13\n0x8 0x6b6d01a5 1\n0xc 0x00000007 1\n"
    shared = parse_runs(text)
    assert shared.size == 13 and [r.offset for r in shared.runs] == [8, 12]


def test_noise_is_cut_and_said() -> None:
    noise = b"".join(i.to_bytes(4, "little") for i in range(1, MAX_RUNS + 10))
    text = format_runs(noise)
    assert text.endswith("truncated\n")
    assert parse_runs(text).truncated and len(parse_runs(text).runs) == MAX_RUNS


@pytest.mark.parametrize("text", ["", "0x8 0x1 1\n", "size 8\n0x8 zz\n"])
def test_bad_summary_is_refused(text: str) -> None:
    with pytest.raises(ParseError):
        parse_runs(text)


IOMEM = """\
00000000-00000fff : Reserved
20000000-febfffff : PCI Bus 0000:00
  fea00000-feafffff : 0000:00:03.0
    fea00000-feafffff : kml_ioremap
  febff000-febff0ff : 0000:00:03.0
"""


def test_iomem_nesting_and_claims() -> None:
    entries = parse_iomem(IOMEM)
    assert [e.depth for e in entries] == [0, 0, 1, 2, 1]
    (claim,) = claimed_by(entries, "kml_ioremap")
    assert (claim.start, claim.size) == (0xFEA00000, 1 << 20)
    with pytest.raises(ParseError, match="line 2"):
        parse_iomem("00000000-00000fff : Reserved\nnonsense\n")
