"""Module frames of kernel reports as source lines (kmodlab.symbolize): which frames, which
offsets (the faulting one as printed, return addresses one byte back), inlining, and the
build cache's renamed folder.  addr2line itself runs on real .ko files in
tests/integration/test_module_trees.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab import symbolize
from kmodlab.leaks import ElfInfo, ElfSection, ElfSymbol

OOPS = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[list, Path]:
    ko = tmp_path / "entry" / "kml_x.ko"
    ko.parent.mkdir()
    ko.write_bytes(b"\x7fELF")
    (ko.parent / "kml_x.c").write_text("int x;\n")
    elf = ElfInfo((ElfSection(0, "", 0, 0), ElfSection(1, ".text", 0x200, 6),
                   ElfSection(2, ".init.text", 0x40, 6)),
                  (ElfSymbol("kml_x_work", 1, 0x100, 0x40, 2),
                   ElfSymbol("kml_x_init", 2, 0, 0x40, 2)))
    calls: list[tuple[str, int]] = []

    def lookup(tool: str, path: Path, section: str, offset: int) -> list[tuple[str, str]]:
        calls.append((section, offset))
        partial = f"{tmp_path}/.entry.partial-1-abc/kml_x.c"
        if section == ".text":
            return [("kml_x_inner", f"{partial}:7"), ("kml_x_work", f"{partial}:20")]
        return [("kml_x_init", "/src/kml_x.c:30 (discriminator 1)")]

    monkeypatch.setattr(symbolize, "_lookup", lookup)
    monkeypatch.setattr(symbolize, "_elf", lambda path, mtime: elf)
    monkeypatch.setattr(symbolize, "addr2line_tool", lambda arch: "addr2line")
    return calls, ko


REPORT = """[   7.1] WARNING: CPU: 0 PID: 117 at kml_x.c:30 kml_x_init+0xe/0x40 [kml_x]
[   7.2] RIP: 0010:kml_x_init+0xe/0x40 [kml_x]
[   7.3] Call Trace:
[   7.4]  kml_x_work+0x10/0x40 [kml_x]
[   7.5]  other_fn+0x10/0x40 [other_mod]
[   7.6]  do_one_initcall+0x56/0x220
"""


def test_frames_of_the_module_with_their_lines(lookups: tuple[list, Path]) -> None:
    calls, ko = lookups
    frames = symbolize.symbolize(REPORT, {"kml_x": ko}, "x86_64")
    assert [f.frame for f in frames] == ["kml_x_init+0xe/0x40 [kml_x]",
                                         "kml_x_work+0x10/0x40 [kml_x]"]
    # the faulting frame as printed; the return address one byte back, from the symbol's start
    assert calls == [(".init.text", 0xe), (".text", 0x100 + 0x10 - 1)]
    init, work = frames
    assert init.location == "/src/kml_x.c:30"          # discriminator dropped
    assert work.function == "kml_x_inner" and work.line == 7
    assert work.file == str(ko.parent / "kml_x.c")     # the renamed cache folder
    outer = f"kml_x_work at {ko.parent.parent}/.entry.partial-1-abc/kml_x.c:20"
    assert work.inlined_into == (outer,)
    assert work.describe().startswith("kml_x_work+0x10/0x40 [kml_x] at ")


def test_no_module_no_tool_no_frames(lookups: tuple[list, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _calls, ko = lookups
    assert symbolize.symbolize(REPORT, {}, "x86_64") == []
    assert symbolize.symbolize("BUG: no frames here\n", {"kml_x": ko}, "x86_64") == []
    monkeypatch.setattr(symbolize, "addr2line_tool", lambda arch: None)
    assert symbolize.symbolize(REPORT, {"kml_x": ko}, "x86_64") == []


def test_the_frame_pattern_on_a_real_oops() -> None:
    text = next(p.read_text() for p in sorted(OOPS.glob("*oops*")))
    frames = [m.group(0) for m in symbolize.FRAME_RE.finditer(text)]
    assert frames and all(f.endswith("]") and "+0x" in f for f in frames)
