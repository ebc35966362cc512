"""Parameter models, one file per family."""

from __future__ import annotations

from kmodlab.modules.params.base import FamilyParams
from kmodlab.modules.params.bugs import BugsParams
from kmodlab.modules.params.devres import DevresParams
from kmodlab.modules.params.dma import DmaParams
from kmodlab.modules.params.ioremap import IoremapParams
from kmodlab.modules.params.kmalloc import KmallocParams
from kmodlab.modules.params.kmem_cache import KmemCacheParams
from kmodlab.modules.params.mempool import MempoolParams
from kmodlab.modules.params.pages import PagesParams
from kmodlab.modules.params.percpu import PercpuParams
from kmodlab.modules.params.vmalloc import VmallocParams

PARAMS: dict[str, type[FamilyParams]] = {
    cls.family: cls
    for cls in (
        KmallocParams,
        KmemCacheParams,
        MempoolParams,
        VmallocParams,
        PercpuParams,
        DevresParams,
        PagesParams,
        IoremapParams,
        DmaParams,
        BugsParams,
    )
}

__all__ = [
    "PARAMS",
    "BugsParams",
    "DevresParams",
    "DmaParams",
    "FamilyParams",
    "IoremapParams",
    "KmallocParams",
    "KmemCacheParams",
    "MempoolParams",
    "PagesParams",
    "PercpuParams",
    "VmallocParams",
]
