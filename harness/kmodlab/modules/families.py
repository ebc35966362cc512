"""The allocator families kmodlab generates modules for, as data.

Adding a family means adding a template directory under ``modules/`` and a parameter model under
``params/``, then one line here.

A family is *measured* unless it says otherwise: its modules allocate, hold and free correctly,
so whatever sweeps "every family" (test sweeps, benchmarks, the leak-drift study) may run it
with its defaults.  Those sweeps iterate :data:`MEASURED_FAMILIES`, never :data:`FAMILIES`.  The
``bugs`` family is not measured: each of its modules holds one deliberate memory bug and may
oops, WARN or corrupt an allocator, so it runs only when named (``kmodlab run bugs -p bug=...``).
``kmodlab check`` and ``kmodlab claims`` have their own lists (``check.families.CHECKS``,
``claims.yaml``), which hold no bugs family either.
"""

from __future__ import annotations

from dataclasses import dataclass

from kmodlab.errors import ConfigError
from kmodlab.modules.params import PARAMS
from kmodlab.modules.params.base import FamilyParams


@dataclass(frozen=True)
class Family:
    name: str
    params: type[FamilyParams]
    summary: str
    measured: bool = True
    """False for a family whose modules misbehave on purpose: never part of "every family"."""

    @property
    def module_name(self) -> str:
        """The .ko's name, also the KTAP header's module= value."""
        return f"kml_{self.name}"

    @property
    def template(self) -> str:
        """Template path relative to modules/."""
        return f"{self.name}/module.c.j2"


_SUMMARIES = {
    "kmalloc": "kmalloc/kzalloc over sizes x GFP masks; ksize, size classes, krealloc, kvmalloc",
    "kmem_cache": "a named slab cache (size, align, flags, ctor) holding `count` objects",
    "mempool": "slab-, kmalloc- and page-backed mempools: reserve use, refill and resize",
    "vmalloc": "vmalloc/vzalloc areas: pages, guard page, physical (dis)contiguity vs kmalloc",
    "percpu": "static and dynamic per-CPU variables bumped on every CPU, and alloc_percpu sizes",
    "devres": "a platform driver whose probe allocates with devm_*; unbind frees everything",
    "pages": "buddy allocator blocks of orders 0..N per GFP zone: pfn, alignment, zone",
    "ioremap": "device memory (the guest's ivshmem BAR) via ioremap/ioremap_wc/pci_iomap",
    "dma": "coherent DMA buffers (dma_alloc_coherent, dmam_alloc_coherent) for the ivshmem device",
    "bugs": "one deliberate memory bug per module (-p bug=CLASS), for the kernel's detectors",
}

_NOT_MEASURED = frozenset({"bugs"})

FAMILIES: dict[str, Family] = {
    name: Family(name, PARAMS[name], summary, measured=name not in _NOT_MEASURED)
    for name, summary in _SUMMARIES.items() if name in PARAMS
}
"""Every family, by name: what ``kmodlab build/run FAMILY`` and the ``kmodule`` fixture accept."""

MEASURED_FAMILIES: tuple[str, ...] = tuple(name for name, fam in FAMILIES.items() if fam.measured)
"""The families a sweep over "every family" runs: all but those that misbehave on purpose."""


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown module family '{name}'; known: {', '.join(FAMILIES)}"
        ) from None
