"""Integration tests boot real Debian kernels under QEMU.

The kernel matrix defaults to every arch x series; ``KMODLAB_MATRIX=x86_64:6.1,arm64:6.12``
narrows it.  Kernels come from the cache (``make kernels`` fills it); a kernel that cannot be
provisioned is an error, never a skip: these tests exist to run.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from kmodlab.kernels import provision
from kmodlab.kernels.kernel import Kernel

DEFAULT_MATRIX = "x86_64:6.1,x86_64:6.12,arm64:6.1,arm64:6.12"


def matrix() -> list[tuple[str, str]]:
    entries = os.environ.get("KMODLAB_MATRIX", DEFAULT_MATRIX)
    return [tuple(e.split(":", 1)) for e in entries.split(",") if e]  # type: ignore[misc]


MATRIX = matrix()
MATRIX_IDS = [f"{a}-{s}" for a, s in MATRIX]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", params=MATRIX, ids=MATRIX_IDS)
def kernel(request: pytest.FixtureRequest) -> Kernel:
    arch, series = request.param
    return provision(arch, series)


def qemu_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}
