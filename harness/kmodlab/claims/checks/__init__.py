"""How each claim is judged: once by the model, once by what a booted kernel did.

The interface and the registry are in :mod:`.base`; the checks are grouped by allocator.
Importing this package registers them all in :data:`CHECKS`.
"""

from kmodlab.claims.checks import kmalloc, mempool, pages, vmalloc
from kmodlab.claims.checks.base import CHECKS, Check, Finding, register
from kmodlab.claims.checks.kmalloc import kmalloc_test, measured_ksizes

__all__ = ["CHECKS", "Check", "Finding", "kmalloc", "kmalloc_test", "measured_ksizes", "mempool",
           "pages", "register", "vmalloc"]
