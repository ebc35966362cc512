"""Unpacking a Gradescope autograder zip the way Gradescope's unzip does (shared by the unit and
integration tests of kmodlab lab gradescope)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def unpack(archive: Path, dest: Path) -> Path:
    """Extract like unzip does on Unix: the modes the zip records are applied."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = dest / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zf.read(info))
            if mode := (info.external_attr >> 16) & 0o777:
                path.chmod(mode)
    return dest
