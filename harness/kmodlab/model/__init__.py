"""Reference model of the kernel allocators of Debian 6.1 and 6.12 (x86_64, arm64).

``Model(arch, version, kconfig=None, ncpus=1)`` answers "what should the kernel show?" for
kmalloc classes, SLUB geometry and merging, buddy orders, vmalloc, mempool, per-CPU and devres
allocations; every answer is a :class:`Prediction` citing the kernel code it follows.
Per-arch/per-version numbers live in one table, :mod:`kmodlab.model.tables`.
"""

from kmodlab.model.errors import ModelError
from kmodlab.model.model import KmemCacheInfo, MergeVerdict, Model, SlabinfoCounts, Waste
from kmodlab.model.params import KernelParams
from kmodlab.model.prediction import Prediction
from kmodlab.model.slab import MergeCandidate, SlabFlag

__all__ = [
    "KernelParams", "KmemCacheInfo", "MergeCandidate", "MergeVerdict", "Model", "ModelError",
    "Prediction", "SlabFlag", "SlabinfoCounts", "Waste",
]
