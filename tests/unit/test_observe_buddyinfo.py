"""/proc/buddyinfo parser (mm/vmstat.c:frag_show_print() format, trailing space)."""

from __future__ import annotations

import pytest

from kmodlab.observe import ParseError, diff_buddyinfo, parse_buddyinfo
from kmodlab.observe.buddyinfo import free_pages


def bl(node: int, zone: str, counts: list[int]) -> str:
    # the kernel's own printf formats (mm/vmstat.c:frag_show_print())
    return "Node %d, zone %8s " % (node, zone) + "".join("%6lu " % c for c in counts)  # noqa: UP031


X86 = bl(0, "DMA", [0] * 8 + [1, 1, 3]) + "\n" + bl(0, "DMA32", [312, 141, 95, 40, 19, 9, 4, 3, 3, 3, 212]) + "\n"


def test_parses_zones() -> None:
    info = parse_buddyinfo(X86, nr_orders=11)
    assert list(info) == [(0, "DMA"), (0, "DMA32")]
    assert info.zone("DMA") == (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3)
    assert info.nr_orders == 11
    assert info.free_pages(zone="DMA") == 256 + 512 + 3 * 1024
    assert info.free_pages() == info.free_pages(zone="DMA") + free_pages(info.zone("DMA32"))


@pytest.mark.parametrize("text, problem", [
    ("Node 0, zone DMA 1 2 x\n", "expected 'Node"),
    ("zone DMA 1 2 3\n", "expected 'Node"),
    (bl(0, "DMA", [1] * 11) + "\n" + bl(0, "DMA32", [1] * 10) + "\n", "11 order columns"),
    (bl(0, "DMA", [1] * 11) + "\n" + bl(0, "DMA", [1] * 11) + "\n", "twice"),
    ("\n\n", "no zone"),
])
def test_rejects_malformed(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        parse_buddyinfo(text)


def test_order_count_is_enforced() -> None:
    with pytest.raises(ParseError, match="expected 12"):
        parse_buddyinfo(X86, nr_orders=12)


def test_diff() -> None:
    before = parse_buddyinfo(X86)
    after_counts = list(before.zone("DMA32"))
    after_counts[7] -= 1
    after_counts[5] += 1
    after_counts[6] += 1
    after = parse_buddyinfo(bl(0, "DMA", [0] * 8 + [1, 1, 3]) + "\n" + bl(0, "DMA32", after_counts))
    d = diff_buddyinfo(before, after)
    assert d.nonzero() == {(0, "DMA32"): {5: 1, 6: 1, 7: -1}}
    assert d.free_pages() == 32 + 64 - 128
    assert dict(d.items())[(0, "DMA")] == (0,) * 11          # a Mapping of zone -> deltas
    with pytest.raises(ValueError):
        diff_buddyinfo(before, parse_buddyinfo(bl(0, "DMA", [0] * 11)))
