"""The project stands alone: no source cites fact sheets that live outside the repository.

Comments and docs cite the kernel, QEMU or Debian source, and docs/kernel-notes.md or
docs/guest-notes.md, never the sheets the project was started from.  The patterns are built
from pieces so this file does not trip its own check.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("harness", "tests", "docs", "modules", "labs", "images", "kconfig", "benchmarks",
           "examples", "scripts", "README.md")
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}

_FACTS = "FA" + "CTS"
_SHEET = "sha" + "red"
CITATION = re.compile("|".join([
    rf"\.\./{_SHEET}\b",                          # the sibling directory of the project
    rf"\b{_SHEET}/(?:[A-Z][A-Z-]*\.md|hooks)\b",  # its files: <dir>/KERNEL-...md, STYLE.md, ...
    rf"\b(?:KERNEL|GUEST)-{_FACTS}\b",            # the two fact sheets, in any form
    r"\b" + "PE" + r"ERS\b",                      # the survey sheet
]))


def _text_files() -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        if top.is_file():
            files.append(top)
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts):
                files.append(path)
    return files


def _lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if b"\0" in data:
        return []            # binary (images, compiled files)
    return data.decode("utf-8", errors="replace").splitlines()


def test_scan_covers_the_source() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in _text_files()}
    assert "harness/kmodlab/model/tables.py" in files
    assert "docs/kernel-notes.md" in files and "docs/guest-notes.md" in files


def test_the_patterns_catch_each_form() -> None:
    for cited in (f"../{_SHEET}/KERNEL-{_FACTS}.md", f"{_SHEET}/GUEST-{_FACTS}.md",
                  f"(KERNEL-{_FACTS} 3.2)", f"GUEST-{_FACTS} pitfall 4", "see " + "PE" + "ERS",
                  f"/work/{_SHEET}/STYLE.md"):
        assert CITATION.search(cited), cited
    for fine in ("mm/slab_common.c:find_mergeable()", f"a {_SHEET}/exclusive lock",
                 f"lib/{_SHEET}/x.c", "peers", "docs/kernel-notes.md, Cache merging"):
        assert not CITATION.search(fine), fine


def test_no_source_cites_sheets_outside_the_repository() -> None:
    hits = [f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}"
            for path in _text_files()
            for number, line in enumerate(_lines(path), 1)
            if CITATION.search(line)]
    assert not hits, ("cite the kernel/QEMU/Debian source or docs/kernel-notes.md / "
                      "docs/guest-notes.md instead:\n" + "\n".join(hits))
