"""Integration tests boot real Debian kernels under QEMU.

They use kmodlab's own pytest plugin: the kernel matrix comes from ``--kmodlab-arch`` /
``--kmodlab-kernel`` (pyproject.toml sets every arch x series), e.g.
``pytest tests/integration --kmodlab-arch arm64 --kmodlab-kernel 6.12`` narrows it.  A kernel that
cannot be provisioned is an error, never a skip: these tests exist to run.

Tiers.  ``KMODLAB_TIER=full`` (the default; ``scripts/test``) runs every test on every kernel.
``KMODLAB_TIER=ci`` (``.ci/run``, which must finish in 90 minutes on 2 cores with an empty cache)
runs every test file on the diagonal of the matrix (``CI_TARGETS``: each arch and each series
at least once) and keeps the files that spend minutes per kernel rebuilding and re-grading the
same code (``HEAVY_FILES``) off the other two kernels; those items are reported as deselected,
so the summary says how many were left out.
"""

from __future__ import annotations

import os

import pytest

from kmodlab.kernels.kernel import Kernel

CI_TARGETS = ("x86_64-6.1", "arm64-6.12")
"""The kernels that run every integration file in the ci tier (each arch, each series)."""

HEAVY_FILES = ("test_jail.py", "test_labs.py", "test_leaks.py", "test_cache_healing_guests.py",
               "test_fault_zoo.py", "test_whole_log.py", "test_module_trees.py",
               "test_refusals_on_kernels.py", "test_ci_templates.py",
               "test_bugs_family_build.py")
"""Files that compile and grade dozens of modules per kernel: the ci tier runs them on
CI_TARGETS only, which still cover both arches and both series; the full tier runs them on
every kernel."""


def _ci_tier_drops(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("kmodlab_target") if callspec is not None else None
    return (item.path.name in HEAVY_FILES and target is not None
            and target.label not in CI_TARGETS)


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
