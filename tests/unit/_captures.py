"""Locating the captured /proc and log fixtures.

Captures live in ``tests/fixtures/proc/<arch>-<series>/<kind>[-<anything>].txt`` with kind one of
slabinfo, buddyinfo, vmallocinfo, meminfo, dmesg; an optional ``capture.json`` says how the
guest ran (``{"ncpus": 2}``; 2 is assumed, the -smp of the verified boots).  Tests parametrize
over every file found, so a new capture is tested by dropping it in.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROC = FIXTURES / "proc"
KINDS = ("slabinfo", "buddyinfo", "vmallocinfo", "meminfo", "zoneinfo", "dmesg")


def capture_dirs() -> list[Path]:
    return sorted(d for d in PROC.iterdir() if d.is_dir())


def capture_files(kind: str | None = None) -> list[Path]:
    files = [f for d in capture_dirs() for f in sorted(d.glob("*.txt"))]
    if kind is not None:
        files = [f for f in files if kind_of(f) == kind]
    return files


def kind_of(path: Path) -> str:
    return path.stem.split("-", 1)[0].split(".", 1)[0]


def arch_series(path: Path) -> tuple[str, str]:
    """``<arch>-<series>[+<configs>]`` -> (arch, series)."""
    arch, series = path.parent.name.split("+", 1)[0].rsplit("-", 1)
    return arch, series


def capture_kconfig(path: Path) -> dict[str, str] | None:
    """The built kernel's .config saved next to the capture (None: Debian's kernel)."""
    saved = path.parent / "kconfig"
    if not saved.is_file():
        return None
    pairs = (line.split("=", 1) for line in saved.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def capture_ncpus(path: Path) -> int:
    meta = path.parent / "capture.json"
    if meta.is_file():
        return int(json.loads(meta.read_text()).get("ncpus", 2))
    return 2


def fixture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
