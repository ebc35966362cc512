"""devres (managed device resources): what devm_kmalloc() really allocates.

Rules: drivers/base/devres.c: struct devres = struct devres_node (40 B) + data[] aligned to
ARCH_KMALLOC_MINALIGN (6.1) or ARCH_DMA_MINALIGN (6.12); alloc_dr() allocates
sizeof(struct devres) + size (6.12 rounds it with kmalloc_size_roundup()); resources are
released in reverse order of addition by devres_release_all() (release_nodes()) on driver
detach, probe failure and device_del().
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from kmodlab.model.kmalloc import kmalloc_bytes, kmalloc_cache_name, kmalloc_size_roundup
from kmodlab.model.params import KernelParams

T = TypeVar("T")


@dataclass(frozen=True)
class DevresAlloc:
    requested: int
    header: int
    total: int                 # sizeof(struct devres) + size
    kmalloc_size: int          # what alloc_dr() passes to kmalloc_node_track_caller()
    cache: str | None          # kmalloc cache, None for the page path or size 0
    bytes: int                 # what the allocation really occupies

    @property
    def zero_size(self) -> bool:
        return self.requested == 0


def devm_kmalloc(p: KernelParams, size: int) -> DevresAlloc:
    """devm_kmalloc(dev, size, gfp): size 0 returns ZERO_SIZE_PTR without a devres node."""
    if size == 0:
        return DevresAlloc(0, p.devres_header_size, 0, 0, None, 0)
    total = p.devres_header_size + size
    asked = kmalloc_size_roundup(p, total) if p.devres_roundup else total
    return DevresAlloc(size, p.devres_header_size, total, asked, kmalloc_cache_name(p, asked),
                       kmalloc_bytes(p, asked))


def devres_release_order(resources: Sequence[T]) -> list[T]:
    """drivers/base/devres.c:release_nodes(): newest first."""
    return list(reversed(resources))
