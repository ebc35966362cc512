"""The family checks, as data: each module exposes FAMILY, probes(model) and compare(obs, model).

Adding a family check means adding a module next to this one, one line here and its name in
``kmodlab.check.cli.FAMILY_NAMES`` (which lists them without importing them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from kmodlab.check import devres, dma, ioremap, kmalloc, kmem_cache, mempool, pages, percpu, vmalloc
from kmodlab.check.observation import Observation, Probe
from kmodlab.check.rows import CheckRow
from kmodlab.model import Model


class FamilyCheck(Protocol):
    FAMILY: str

    def probes(self, model: Model) -> list[Probe]: ...

    def compare(self, obs: Observation, model: Model) -> Iterator[CheckRow]: ...


CHECKS: dict[str, FamilyCheck] = {
    m.FAMILY: m  # type: ignore[misc]
    for m in (kmalloc, kmem_cache, mempool, vmalloc, percpu, devres, pages, ioremap, dma)
}
