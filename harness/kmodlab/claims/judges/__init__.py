"""How each claim is judged: once by the model, once by what a booted kernel did.

The interface and the registry are in :mod:`.base`; the checks are grouped by allocator.
Importing this package registers them all in :data:`JUDGES`.
"""

from kmodlab.claims.judges import (
    boot,
    buffers,
    context,
    dma,
    ioremap,
    kmalloc,
    mempool,
    pages,
    percpu,
    pressure,
    slabinfo,
    vmalloc,
    zones,
)
from kmodlab.claims.judges.base import JUDGES, Finding, Judge, register
from kmodlab.claims.judges.kmalloc import kmalloc_test, measured_ksizes

__all__ = [
           "JUDGES",
           "Finding",
           "Judge",
           "boot",
           "buffers",
           "context",
           "dma",
           "ioremap",
           "kmalloc",
           "kmalloc_test",
           "measured_ksizes",
           "mempool",
           "pages",
           "percpu",
           "pressure",
           "register",
           "slabinfo",
           "vmalloc",
           "zones",
]
