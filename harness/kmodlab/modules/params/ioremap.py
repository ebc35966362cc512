"""ioremap family: device memory (the guest's ivshmem BAR) mapped with ioremap(), ioremap_wc()
and pci_iomap(), filled through the MMIO accessors, held until unload."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from kmodlab.modules.params.base import FamilyParams, unique

API = Literal["ioremap", "ioremap_wc", "pci_iomap"]
APIS: tuple[str, ...] = ("ioremap", "ioremap_wc", "pci_iomap")
WINDOW_MAX = 64 << 20
"""A window is filled word by word under TCG: 64 MiB is already seconds of guest time."""
WORD_BASE = 0x6B6D0000
""""km" in the top half-word; the window's number and 0xA5 below, so a word found in the wrong
window, or a stale one, names where it came from."""


def window_word(index: int) -> int:
    """The 32-bit word that fills window ``index`` (0-based, in ``apis`` order)."""
    return WORD_BASE | (index + 1) << 8 | 0xA5


class IoremapParams(FamilyParams):
    family: ClassVar[str] = "ioremap"

    apis: list[API] = Field(
        default=list(APIS), min_length=1,
        description="ioremap, ioremap_wc and/or pci_iomap: one window of the BAR each, in order")
    size: int = Field(
        default=16384, ge=4, le=WINDOW_MAX, multiple_of=4,
        description=f"bytes per window, a multiple of 4 (32-bit accesses), 4..{WINDOW_MAX}")
    offset: int = Field(
        default=0, ge=0, le=WINDOW_MAX, multiple_of=4,
        description="where the first window starts in the BAR, a multiple of 4; windows follow "
                    "each other, so they must fit in the guest's shared memory "
                    "(GuestOptions.shared_memory_mb, 1 MiB by default)")

    @model_validator(mode="after")
    def _check(self) -> IoremapParams:
        unique(self.apis, "apis")
        return self

    def windows(self) -> list[dict[str, Any]]:
        """Each api's window: its offset in the BAR and its word."""
        return [{"api": api, "offset": self.offset + i * self.size, "word": window_word(i)}
                for i, api in enumerate(self.apis)]

    def needs_bytes(self) -> int:
        """How much of the BAR the windows cover (the module refuses a smaller BAR)."""
        return self.offset + len(self.apis) * self.size

    def template_context(self) -> dict[str, Any]:
        return {"size": self.size, "offset": self.offset, "windows": self.windows()}
