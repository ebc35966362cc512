"""Allocator limits that depend on the kernel a module is built for.

Parameters are checked against these before rendering, so an out-of-range order or size is a
ConfigError naming the limit, not a C compiler error or a WARN in the guest.  Without a kernel the
Debian values (4K pages, orders 0..10) apply.
"""

from __future__ import annotations

from kmodlab.kernels.kernel import Kernel
from kmodlab.model import tables

DEFAULT_PAGE_SHIFT = 12
DEFAULT_MAX_PAGE_ORDER = 10
MAX_HELD_BYTES = 256 << 20
"""What one module may hold at once: a quarter of the 1 GiB guests kmodlab boots."""


def _kconfig(kernel: Kernel) -> dict[str, str]:
    try:
        return kernel.kconfig
    except OSError:  # a Kernel whose .config is not on disk (e.g. in unit tests)
        return {}


def page_shift(kernel: Kernel | None) -> int:
    """PAGE_SHIFT: 12 on x86_64; arm64 reads CONFIG_ARM64_{4K,16K,64K}_PAGES."""
    if kernel is None:
        return DEFAULT_PAGE_SHIFT
    config = _kconfig(kernel)
    if config.get("CONFIG_ARM64_64K_PAGES") == "y":
        return 16
    if config.get("CONFIG_ARM64_16K_PAGES") == "y":
        return 14
    return DEFAULT_PAGE_SHIFT


def max_page_order(kernel: Kernel | None) -> int:
    """Largest order the buddy allocator serves (inclusive).

    include/linux/mmzone.h: MAX_ORDER was exclusive (default 11, or
    CONFIG_ARCH_FORCE_MAX_ORDER) until it became inclusive (default 10), later renamed
    MAX_PAGE_ORDER; the release is ``tables.SINCE["MAX_ORDER_INCLUSIVE"]``.  Orders 0..10 by
    default either way.
    """
    if kernel is None:
        return DEFAULT_MAX_PAGE_ORDER
    forced = _kconfig(kernel).get("CONFIG_ARCH_FORCE_MAX_ORDER")
    if forced is None or not forced.isdigit():
        return DEFAULT_MAX_PAGE_ORDER
    if tables.since("MAX_ORDER_INCLUSIVE", kernel.version):
        return int(forced)
    return int(forced) - 1


def kmalloc_max_size(kernel: Kernel | None) -> int:
    """KMALLOC_MAX_SIZE for SLUB: the largest buddy block, PAGE_SIZE << max order (4 MiB)."""
    return (1 << page_shift(kernel)) << max_page_order(kernel)


def kmalloc_max_cache_size(kernel: Kernel | None) -> int:
    """KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE; above it kmalloc goes to the page allocator."""
    return 2 << page_shift(kernel)
