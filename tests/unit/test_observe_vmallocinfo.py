"""/proc/vmallocinfo parser: callers, flags, NUMA counts, special lines, diff by caller."""

from __future__ import annotations

import pytest

from kmodlab.observe import ParseError, diff_vmallocinfo, parse_vmallocinfo
from kmodlab.observe.vmallocinfo import parse_entry

# Verified (docs/kernel-notes.md, "vmalloc and /proc/vmallocinfo"): vmalloc(10000) -> 16384
# pages=3; vmalloc(3 MiB) -> 3149824 pages=768 vpages plus a 12288 pages=2 line for the page array.
TEXT = """\
0x000000009a4b2c1d-0x00000000c1a2e5f3    8192 acpi_os_map_iomem+0x1c2/0x200 phys=0x000000003ffe0000 ioremap
0x000000009f8e7d6c-0x0000000011223344   16384 ap_vmalloc_small+0x15/0x30 [ap] pages=3 vmalloc N0=3
0x00000000abcdef01-0x0000000023456789 3149824 ap_vmalloc_big+0x15/0x30 [ap] pages=768 vmalloc vpages N0=768
0x0000000098765432-0x0000000010fedcba   12288 ap_vmalloc_big+0x15/0x30 [ap] pages=2 vmalloc N0=2
0x(____ptrval____)-0x(____ptrval____)    8192 0xffffffffc0a01234 pages=1 vmalloc N0=1
0x000000001b2c3d4e-0x00000000f5e6d7c8 2097152 pcpu_get_vm_areas+0x0/0x1120 vmalloc
0x000000004b5c6d7e-0x000000008f9a0b1c   65536 vm_map_ram
0x00000000c0ffee00-0x00000000badc0ffe    8192 unpurged vm_area
"""


def test_parses_entries() -> None:
    info = parse_vmallocinfo(TEXT)
    assert len(info) == 8
    io = info[0]
    assert io.caller is not None and io.caller.function == "acpi_os_map_iomem"
    assert (io.caller.offset, io.caller.size, io.caller.module) == (0x1c2, 0x200, None)
    assert io.phys == "0x000000003ffe0000" and io.flags == {"ioremap"} and io.pages == 0
    small = info[1]
    assert (small.size, small.pages, small.module, small.numa) == (16384, 3, "ap", {0: 3})
    assert str(small.caller) == "ap_vmalloc_small+0x15/0x30 [ap]"
    big = info[2]
    assert big.flags == {"vmalloc", "vpages"} and big.pages == 768 and big.size == 3149824
    raw = info[4]
    assert raw.caller is None and raw.raw_caller == "0xffffffffc0a01234"
    assert raw.caller_key == "0xffffffffc0a01234"
    assert info[6].kind == "vm_map_ram" and info[7].kind == "unpurged"
    assert all(e.numa_consistent for e in info)


def test_filters_and_counts() -> None:
    info = parse_vmallocinfo(TEXT)
    assert len(info.by_module("ap")) == 3
    assert [e.pages for e in info.by_caller("ap_vmalloc_big")] == [768, 2]
    assert len(info.by_caller("ap_vmalloc_big", module="other")) == 0
    counts = info.count_by_caller()
    assert counts["ap_vmalloc_big [ap]"] == 2 and counts["<unpurged>"] == 1
    assert info.vmalloc_pages() == 3 + 768 + 2 + 1


def test_diff_by_caller() -> None:
    before = parse_vmallocinfo("\n".join(TEXT.splitlines()[:2]))
    after = parse_vmallocinfo(TEXT)
    d = diff_vmallocinfo(before, after)
    assert d["ap_vmalloc_big [ap]"].count == 2
    assert d["ap_vmalloc_big [ap]"].size == 3149824 + 12288
    assert d["ap_vmalloc_big [ap]"].pages == 770
    assert "ap_vmalloc_small [ap]" not in d
    assert diff_vmallocinfo(after, before)["ap_vmalloc_big [ap]"].count == -2


@pytest.mark.parametrize("line, problem", [
    ("0x1-0x2", "expected '0x<start>"),
    ("garbage", "expected '0x<start>"),
    ("0x1-0x2 8192 foo+0x1/0x2 pages=x vmalloc", "bad page count"),
    ("0x1-0x2 8192 foo+0x1/0x2 pages=1 vmallocx", "unknown field"),
])
def test_rejects_malformed(line: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        parse_entry(line, 7)


def test_error_names_the_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_vmallocinfo(TEXT + "0x1-0x2 4096 f+0x1/0x2 wat\n")
    assert err.value.line_no == 9
