"""Warm guests shared across tests (or students), replaced when one is left broken.

A guest that crashed, hung or was marked dirty is stopped and a new one started; because the
snapshot cache holds the booted state, "new" costs a restore (~0.3-0.5 s), not a boot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Self

from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kernel import Kernel

log = logging.getLogger(__name__)


@dataclass
class PoolStats:
    started: int = 0
    replaced: int = 0
    reasons: list[str] = field(default_factory=list)


class GuestPool:
    def __init__(self) -> None:
        self._guests: dict[tuple[str, GuestOptions], Guest] = {}
        self.stats = PoolStats()

    def acquire(self, kernel: Kernel, options: GuestOptions) -> Guest:
        """A healthy running guest for ``kernel`` with ``options``, reused when possible."""
        key = (kernel.release + "|" + kernel.arch, options)
        guest = self._guests.get(key)
        if guest is not None and guest.healthy:
            return guest
        if guest is not None:
            reason = f"{kernel.label}: replacing a guest left {guest.state.value}"
            log.info(reason)
            self.stats.replaced += 1
            self.stats.reasons.append(reason)
            guest.stop()
        guest = Guest(kernel, options).start()
        self.stats.started += 1
        self._guests[key] = guest
        return guest

    def discard(self, guest: Guest) -> None:
        """Drop a guest whose state a caller no longer trusts (e.g. a test changed it)."""
        for key, value in list(self._guests.items()):
            if value is guest:
                del self._guests[key]
        guest.stop()

    def close(self) -> None:
        for guest in self._guests.values():
            guest.stop()
        self._guests.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
