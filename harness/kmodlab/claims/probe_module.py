"""kmodlab's own measurement module for the claims (``module/kml_claims.c``), built like any
bring-your-own module.

The source is staged with the shared KTAP header (modules/common/kmodlab_ktap.h) and a one-line
Kbuild into the cache, then handed to :func:`kmodlab.modules.build_source_dir`, whose cache is
keyed by the staged files' contents: an unchanged source never rebuilds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import BuiltModule, build_source_dir
from kmodlab.modules.render import COMMON_DIR
from kmodlab.paths import cache_dir

MODULE_DIR = Path(__file__).with_name("module")
KTAP_HEADER = "kmodlab_ktap.h"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.rename(path)


def stage(name: str) -> Path:
    """Copy ``module/<name>.c`` and the KTAP header into a build tree with its Kbuild."""
    source = MODULE_DIR / f"{name}.c"
    tree = cache_dir("claims", "src", name)
    _write_if_changed(tree / f"{name}.c", source.read_text())
    _write_if_changed(tree / KTAP_HEADER, (COMMON_DIR / KTAP_HEADER).read_text())
    _write_if_changed(tree / "Kbuild", f"obj-m := {name}.o\n")
    return tree


def build_probe_module(name: str, kernel: Kernel, args: Sequence[str] = ()) -> BuiltModule:
    """Build ``name`` for ``kernel``; ``args`` become its insmod parameters."""
    return build_source_dir(stage(name), kernel, list(args), module_name=name)
