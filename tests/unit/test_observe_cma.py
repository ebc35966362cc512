"""CMA areas from the boot log (the only place a stock kernel says where they are)."""

from __future__ import annotations

from kmodlab.observe.cma import cma_areas


def test_the_boot_lines_of_every_series() -> None:
    log = ("[    0.000000] cma: Reserved 64 MiB at 0x00000000bc000000\n"           # 5.10, 6.1
           "[    0.000000] cma: Reserved 16 MiB at 0x000000005b600000 on node -1\n"   # 6.12+
           "[    0.000000] cma: dma_contiguous_reserve(limit 100000000)\n")
    assert cma_areas(log) == [(0xBC000000, 64 << 20), (0x5B600000, 16 << 20)]
    assert cma_areas("") == []
