"""The registry's names and defaults, for help texts and option defaults, without reading YAML.

Building kmodlab's parser needs only the arch, series and flavour names and the defaults, on
every invocation (``kmodlab --help`` included).  Importing PyYAML and parsing ``series.yaml``
costs more than the rest of the parser, so the names are kept in a small JSON file in the cache
root, keyed by ``series.yaml``'s path, size and mtime and by the files in ``arches/``; when the
key differs (an edited or new data file, another checkout) they are read from the registry
again, which also checks the data, and the file is rewritten.  The file is only a copy: the
registry's own functions (:func:`kmodlab.registry.arch_names` and the others) always read the
YAML, and a cache that cannot be read or written is simply not used.

This module imports nothing but the standard library's ``json`` and ``os``.
"""

from __future__ import annotations

import json
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
_SERIES_FILE = os.path.join(_HERE, "series.yaml")
_ARCH_DIR = os.path.join(_HERE, "arches")
CACHE_NAME = "registry-names.json"
_FORMAT = 1
_KEYS = ("arches", "series", "flavours", "default_arch", "default_series", "default_flavour")

_names: dict[str, object] | None = None


def cache_file() -> str:
    """Where the copy lives: the cache root of :func:`kmodlab.paths.cache_root` (same rule;
    ``tests/unit/test_cli_fast.py`` holds them equal), without importing kmodlab.paths."""
    root = os.environ.get("KMODLAB_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = os.path.join(xdg or os.path.join(os.path.expanduser("~"), ".cache"), "kmodlab")
    return os.path.join(root, CACHE_NAME)


def _key() -> list[object]:
    st = os.stat(_SERIES_FILE)
    arches = sorted(n for n in os.listdir(_ARCH_DIR) if n.endswith(".yaml"))
    return [_FORMAT, _SERIES_FILE, st.st_size, st.st_mtime_ns, arches]


def _from_registry() -> dict[str, object]:
    from kmodlab import registry

    default = registry.default_target()
    return {"arches": list(registry.arch_names()), "series": list(registry.series_names()),
            "flavours": list(registry.flavour_names()), "default_arch": default.arch,
            "default_series": default.kernel, "default_flavour": registry.default_flavour()}


def _load() -> dict[str, object]:
    key = _key()
    path = cache_file()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        names = data["names"] if data.get("key") == key else None
        if isinstance(names, dict) and all(k in names for k in _KEYS):
            return names
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        pass
    names = _from_registry()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": key, "names": names}, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return names


def _get(name: str) -> object:
    global _names
    if _names is None:
        _names = _load()
    return _names[name]


def arch_names() -> tuple[str, ...]:
    """As :func:`kmodlab.registry.arch_names`: the default arch first, then the others sorted."""
    return tuple(_get("arches"))  # type: ignore[arg-type]


def series_names() -> tuple[str, ...]:
    return tuple(_get("series"))  # type: ignore[arg-type]


def flavour_names() -> tuple[str, ...]:
    return tuple(_get("flavours"))  # type: ignore[arg-type]


def default_arch() -> str:
    return str(_get("default_arch"))


def default_series() -> str:
    return str(_get("default_series"))


def default_flavour() -> str:
    return str(_get("default_flavour"))
