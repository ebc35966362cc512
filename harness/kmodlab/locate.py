"""Where kmodlab's own data lives: the one place that knows the tree's layout.

The module templates (``modules/``), the kernel option fragments (``kconfig/``), the guest's
``/init`` and command agent (``images/``) and the sample labs (``labs/``) sit at the top of the
source tree, beside ``harness/``.  A wheel cannot reach outside its package, so ``setup.py``
copies the same folders into ``kmodlab/_data/`` when it builds one.  :func:`data_dir` looks in
exactly those two places, checkout first (so an editable install reads what a developer edits),
and says which it tried when neither holds the folder.
"""

from __future__ import annotations

from pathlib import Path

from kmodlab.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
"""The import package ``kmodlab`` (``harness/kmodlab`` in a checkout)."""

CHECKOUT_ROOT = PACKAGE_DIR.parent.parent
"""The source tree root when kmodlab runs from a checkout (holds ``pyproject.toml``)."""

PACKAGED_DATA = PACKAGE_DIR / "_data"
"""Where a wheel carries the data folders (written by ``setup.py``)."""

DATA_DIRS = ("modules", "kconfig", "images", "labs")
"""Every top-level data folder kmodlab reads at run time; ``setup.py`` packages exactly these."""


def in_checkout() -> bool:
    """True when this kmodlab is the source tree itself (an editable install or ``PYTHONPATH``)."""
    return (CHECKOUT_ROOT / "pyproject.toml").is_file() and (CHECKOUT_ROOT / "harness").is_dir()


def data_dir(name: str) -> Path:
    """The data folder ``name`` (one of :data:`DATA_DIRS`), from the checkout or the wheel."""
    if name not in DATA_DIRS:
        raise ConfigError(f"unknown data folder {name!r}; kmodlab has {', '.join(DATA_DIRS)}")
    candidates = ([CHECKOUT_ROOT / name] if in_checkout() else []) + [PACKAGED_DATA / name]
    for path in candidates:
        if path.is_dir():
            return path
    raise ConfigError(f"kmodlab's data folder {name!r} is missing (looked in "
                      f"{', '.join(map(str, candidates))}); reinstall kmodlab")


def package_file(relative: str) -> Path:
    """A file shipped inside the import package itself (YAML tables, C sources, lists)."""
    return PACKAGE_DIR / relative
