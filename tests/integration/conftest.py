"""Integration tests boot real Debian kernels under QEMU.

They use kmodlab's own pytest plugin: the kernel matrix comes from ``--kmodlab-arch`` /
``--kmodlab-kernel`` (pyproject.toml sets every arch x series), e.g.
``pytest tests/integration --kmodlab-arch arm64 --kmodlab-kernel 6.12`` narrows it.  A kernel that
cannot be provisioned is an error, never a skip: these tests exist to run.

Tiers.  ``KMODLAB_TIER=full`` (the default; ``scripts/test``) runs every test on every kernel.
``KMODLAB_TIER=ci`` (``.ci/run``, which must finish in 90 minutes on 2 cores with an empty cache)
runs the items that integration_tiers.ci_runs() keeps (arch-sensitive files on the core matrix's
diagonal, the rest on one kernel, no file that builds a kernel of its own beyond debug-memory);
the others are reported as deselected, so the summary says how many were left out.
"""

from __future__ import annotations

import os

import pytest
from integration_tiers import ci_runs

from kmodlab.kernels.kernel import Kernel


def _ci_tier_drops(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("kmodlab_target") if callspec is not None else None
    name = getattr(item, "originalname", item.name)
    if "integration" not in str(item.fspath):
        return False
    return not ci_runs(item.path.name, name, target.label if target is not None else None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    tier = os.environ.get("KMODLAB_TIER", "full")
    if tier not in ("full", "ci"):
        raise pytest.UsageError(f"KMODLAB_TIER must be full or ci, not {tier!r}")
    if tier == "ci":
        dropped = [item for item in items if _ci_tier_drops(item)]
        if dropped:
            items[:] = [item for item in items if not _ci_tier_drops(item)]
            config.hook.pytest_deselected(items=dropped)


@pytest.fixture(scope="session")
def kernel(kmodlab_kernel: Kernel) -> Kernel:
    """The provisioned kernel of the current matrix entry (the plugin's kmodlab_kernel)."""
    return kmodlab_kernel
