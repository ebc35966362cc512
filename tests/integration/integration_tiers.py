"""Which kernels each test tier runs the integration files on (conftest.py and the smoke tier
in test_every_kernel.py read this).

``full`` runs every file on every kernel of the core matrix (series.yaml ``core:``).  ``ci`` must
finish in 90 minutes on 2 cores with an empty cache, under TCG: it runs the files whose subject
changes with the arch (``ARCH_FILES``) on the core matrix's diagonal (``ci_targets()``: each
core arch and each core series once), every other file on the first of them only, leaves the
files that build a kernel of their own to the full tier (``FULL_ONLY``), and boots the rest of
the core matrix in the smoke tier.
"""

from __future__ import annotations

from kmodlab import registry

HOST_SIDE = ("test_pytest_plugin.py", "test_cleanup.py", "test_new_user.py",
             "test_cache_healing_guests.py", "test_whole_log.py", "test_ci_templates.py",
             "test_start_errors.py", "test_labs.py::test_synthetic_submission")
"""Files (or ``file::test``) that test kmodlab's own host-side code through a guest: the plugin,
cleanup, packaging, the cache, the CI templates, and the grader's verdicts on 48 synthetic
submissions (every lab still ships on both arches: test_lab_is_shippable).  The kernel under them
does not change what they exercise, so the ci tier runs them on one kernel."""


ARCH_FILES = ("test_build_modules.py", "test_check.py", "test_guest.py",
              "test_bugs_family_build.py", "test_claims_measured.py", "test_initramfs_boot.py",
              "test_refusals_on_kernels.py", "test_ioremap.py",
              "test_dma.py")
"""Files whose subject changes with the arch (module builds with the cross compiler, the
cross-check, the guest, the bug family's code, claims, refusals): the ci tier runs them on every
diagonal target; every other file on the first target only."""

FULL_ONLY = ("test_context_claims.py", "test_fault_sweeps.py")
"""Files the ci tier leaves to the full tier: each builds a kernel of its own from Debian's source
(debug-context; fault-injection + debug-memory, ~6 min each) before minutes of sweeps.  The ci
tier keeps one such build (debug-memory: the bug zoo, test_kernel_builds.py, the KASAN model)."""


def ci_targets() -> tuple[str, ...]:
    """The core matrix's diagonal, as target labels: x86_64 with the first core series, arm64
    with the second, and so on (every core arch and every core series at least once)."""
    arches, series = registry.core_arches(), registry.core_series()
    n = max(len(arches), len(series))
    return tuple(f"{arches[i % len(arches)]}-{series[i % len(series)]}" for i in range(n))


def ci_runs(file_name: str, test_name: str, target_label: str | None) -> bool:
    """Whether the ci tier runs the item of ``file_name::test_name`` parametrized with
    ``target_label`` (None: an item without a kernel of the matrix)."""
    if file_name in FULL_ONLY:
        return False
    if target_label is None:
        return True
    targets = ci_targets()
    if file_name in HOST_SIDE or f"{file_name}::{test_name}" in HOST_SIDE:
        return target_label == targets[0]
    if file_name not in ARCH_FILES:
        return target_label == targets[0]
    return target_label in targets
