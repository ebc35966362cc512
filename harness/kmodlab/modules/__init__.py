"""Allocator modules from Jinja templates: parameters, rendering, building, caching.

    from kmodlab.modules import FAMILIES, parse_params, build
    params = parse_params("kmalloc", ["sizes=8,96,160", "gfp=GFP_KERNEL,GFP_ATOMIC"])
    built = build("kmalloc", params, kernel)     # kernel from kmodlab.kernels.provision()
    built.ko_path                                 # -> insmod it in a guest

Each family's template lives in ``modules/<family>/module.c.j2``; what its module prints (KTAP
test names and diagnostic keys) is documented in ``modules/README.md``.  Code that runs "every
family" iterates ``MEASURED_FAMILIES``: the ``bugs`` family is in ``FAMILIES`` (so it can be named)
but crashes on purpose.
"""

from kmodlab.modules.build import BuiltModule, build, build_source_dir
from kmodlab.modules.families import FAMILIES, MEASURED_FAMILIES, Family, get_family
from kmodlab.modules.params import PARAMS, FamilyParams
from kmodlab.modules.parsing import parse_params
from kmodlab.modules.render import RenderedModule, render

__all__ = [
    "FAMILIES",
    "MEASURED_FAMILIES",
    "PARAMS",
    "BuiltModule",
    "Family",
    "FamilyParams",
    "RenderedModule",
    "build",
    "build_source_dir",
    "get_family",
    "parse_params",
    "render",
]
