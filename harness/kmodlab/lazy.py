"""Package attributes imported on first use (PEP 562 module ``__getattr__``).

``kmodlab`` imports the feature packages (check, claims, labs...) for their commands on every
invocation; their public names pull in guests, the model and pydantic, which ``kmodlab --help``
must not pay for (tests/unit/test_cli_fast.py).  Each package lists where its names live and
installs the loader this returns.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str],
                 namespace: MutableMapping[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``name`` comes from ``<package>.<exports[name]>`` the first
    time it is asked for, and is then kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value
        return value

    return __getattr__


__all__ = ["lazy_exports"]
