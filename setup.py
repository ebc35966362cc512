"""Build hook: a wheel carries the top-level data folders inside the package.

``modules/``, ``kconfig/``, ``images/`` and ``labs/`` sit beside ``harness/`` (the layout the
project is read in); ``kmodlab.locate.data_dir`` finds them there in a checkout and under
``kmodlab/_data/`` in an installed wheel.  Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_DIRS = ("modules", "kconfig", "images", "labs")  # kmodlab.locate.DATA_DIRS (a test compares)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*.ko", "*.o", "*.mod*", "*.cmd")


class BuildPyWithData(build_py):
    """Copy the data folders into ``<build>/kmodlab/_data`` (not for editable installs, which
    read them from the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "kmodlab" / "_data"
        for name in DATA_DIRS:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(ROOT / name, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithData})
