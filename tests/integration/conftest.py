"""Integration tests boot real Debian kernels under QEMU.

They use kmodlab's own pytest plugin: the kernel matrix comes from ``--kmodlab-arch`` /
``--kmodlab-kernel`` (pyproject.toml sets every arch x series), e.g.
``pytest tests/integration --kmodlab-arch arm64 --kmodlab-kernel 6.12`` narrows it.  A kernel that
cannot be provisioned is an error, never a skip: these tests exist to run.
"""

from __future__ import annotations

import pytest

from kmodlab.kernels.kernel import Kernel


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kernel(kmodlab_kernel: Kernel) -> Kernel:
    """The provisioned kernel of the current matrix entry (the plugin's kmodlab_kernel)."""
    return kmodlab_kernel
