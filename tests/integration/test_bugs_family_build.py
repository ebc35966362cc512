"""Every bugs class builds warning-free for each kernel of the matrix, and its bug survives
compilation on the marked line.  Nothing is loaded: these modules crash on purpose.

The debug info is the check that matters for the detection matrix: a report's module frame
becomes file:line through the .ko's DWARF (kmodlab.symbolize), so the marked statement must
still own instructions after optimisation, inside the class's own function.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel
from kmodlab.leaks import read_elf
from kmodlab.modules import build, render
from kmodlab.modules.bugs import bug_line
from kmodlab.modules.params.bugs import BUG_CLASSES, bug_tag
from kmodlab.symbolize import addr2line_tool

pytestmark = pytest.mark.integration

CASES = [pytest.param(bug, at, id=f"{bug}-{at}") for bug in BUG_CLASSES for at in ("load", "unload")]


def source_lines_of(ko: Path, arch: str, function: str, source_name: str) -> set[int]:
    """Every line of ``source_name`` that some instruction of ``function`` comes from (inlined
    frames included: addr2line -i)."""
    elf = read_elf(ko)
    assert elf is not None, ko
    symbol = next((s for s in elf.symbols if s.name == function), None)
    assert symbol is not None and symbol.size > 0, f"{function} is not a function of {ko.name}"
    tool = addr2line_tool(arch)
    assert tool is not None, "addr2line (binutils) is missing"
    addresses = [hex(symbol.value + offset) for offset in range(symbol.size)]
    out = subprocess.run([tool, "-i", "-e", str(ko), "-j", elf.sections[symbol.section].name,
                          *addresses], capture_output=True, text=True, timeout=60, check=True)
    found = set()
    for text in out.stdout.splitlines():
        location = text.split(" (discriminator")[0].strip()
        file, _, line = location.rpartition(":")
        if Path(file).name == source_name and line.isdigit():
            found.add(int(line))
    return found


@pytest.mark.parametrize(("bug", "at"), CASES)
def test_bug_class_builds_without_warnings(kernel: Kernel, bug: str, at: str) -> None:
    params = {"bug": bug, "at": at}
    built = build("bugs", params, kernel)
    assert built.ko_path.is_file()
    assert built.warnings == (), f"{bug} at {at} on {kernel.label}:\n" + "\n".join(built.warnings)
    assert " warning: " not in built.log
    assert f"vermagic={kernel.release} ".encode() in built.ko_path.read_bytes()

    # The kept source is the rendered one, and the marked line is compiled code of the
    # class's noinline function: the frame and line a symbolized report names.
    line = bug_line(built.source_path.read_text())
    assert line == bug_line(render("bugs", params).source)
    lines = source_lines_of(built.ko_path, kernel.arch, f"kml_{bug_tag(bug)}",
                            built.source_path.name)
    assert line in lines, f"no instruction of kml_{bug_tag(bug)} comes from line {line}"
