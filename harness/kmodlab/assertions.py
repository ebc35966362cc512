"""Assertions for kernel-allocator tests whose failures read like a diff, not a repr.

    phase = mod.load()
    assert_ktap_passed(phase)
    assert_matches(model.ksize(160), phase.result("kmalloc_160_kernel").values["ksize"])
    assert_slab_growth(phase, "kmalloc-192", at_least=1)
    assert_clean_unload(mod.unload())
"""

from __future__ import annotations

from typing import Any

from kmodlab.observe import diff_slabinfo
from kmodlab.runner import Phase


class KernelAssertionError(AssertionError):
    """An assertion about the kernel failed; the message carries the evidence."""


def assert_ktap_passed(phase: Phase) -> None:
    """Every KTAP test point the module printed in this phase passed (and there was one)."""
    rows, failed = [], []
    for doc in phase.ktap:
        for path, result in doc.walk():
            rows.append(f"  {result.status:7} {'/'.join(path) or result.name}")
            if not result.passed:
                failed.append(result.name)
        failed += [f"KTAP error: {issue}" for issue in doc.all_errors()]
    if not phase.ktap:
        raise KernelAssertionError(f"phase {phase.name}: the module printed no KTAP document\n"
                                   f"kernel log of the phase:\n{phase.log[-3000:]}")
    if failed:
        raise KernelAssertionError(f"phase {phase.name}: {len(failed)} KTAP failure(s): "
                                   f"{', '.join(failed)}\n" + "\n".join(rows))


def assert_no_kernel_complaints(phase: Phase, allow: frozenset[str] = frozenset()) -> None:
    """No oops, BUG, WARNING, slab leak, KASAN... report in this phase's kernel log."""
    bad = [e for e in phase.complaints if e.kind not in allow]
    if bad:
        raise KernelAssertionError(
            f"phase {phase.name}: the kernel reported {', '.join(e.kind for e in bad)}:\n"
            + "\n\n".join(e.excerpt for e in bad))


def assert_matches(prediction: Any, observed: Any, what: str = "") -> None:
    """The observation agrees with a model Prediction (exactly, or within its bound)."""
    if prediction.accepts(observed):
        return
    expected = (f"{prediction.value}" if prediction.exact
                else f"{prediction.value} within {prediction.bound}")
    raise KernelAssertionError(
        f"{what or 'value'}: model predicted {expected}, kernel showed {observed}\n"
        f"  rule: {prediction.rule}\n  why: {prediction.reason}")


def slab_table(phase: Phase, names: list[str]) -> str:
    """before -> after rows of /proc/slabinfo for ``names``."""
    lines = [f"  {'cache':24} {'active_objs':>20} {'num_objs':>20} {'num_slabs':>16}"]
    for name in names:
        before, after = phase.before.slabinfo.get(name), phase.after.slabinfo.get(name)
        cells = [f"{getattr(before, attr) if before else '-'} -> "
                 f"{getattr(after, attr) if after else '-'}"
                 for attr in ("active_objs", "num_objs", "num_slabs")]
        lines.append(f"  {name:24} {cells[0]:>20} {cells[1]:>20} {cells[2]:>16}")
    return "\n".join(lines)


def assert_slab_growth(phase: Phase, cache: str, *, at_least: int | None = None,
                       exactly: int | None = None) -> None:
    """active_objs of ``cache`` grew by ``exactly`` / ``at_least`` objects during the phase."""
    before = phase.before.slabinfo.get(cache)
    after = phase.after.slabinfo.get(cache)
    if after is None:
        changed = sorted(diff_slabinfo(phase.before.slabinfo, phase.after.slabinfo).changed)[:8]
        raise KernelAssertionError(f"cache {cache!r} is not in /proc/slabinfo after phase "
                                   f"{phase.name} (merged into another cache?)\n"
                                   + slab_table(phase, changed))
    growth = after.active_objs - (before.active_objs if before else 0)
    ok = (exactly is None or growth == exactly) and (at_least is None or growth >= at_least)
    if not ok:
        want = f"exactly {exactly}" if exactly is not None else f"at least {at_least}"
        raise KernelAssertionError(f"{cache}: active_objs grew by {growth}, expected {want}\n"
                                   + slab_table(phase, [cache]))


def assert_clean_unload(phase: Phase, module_caches: tuple[str, ...] = ()) -> None:
    """rmmod succeeded, the kernel complained about nothing, and nothing of the module remains:
    no caches it named and no vmalloc areas whose caller is in the module."""
    if not phase.command.ok:
        raise KernelAssertionError(f"rmmod failed (exit {phase.command.exit_status}): "
                                   f"{phase.command.output.strip()}")
    assert_no_kernel_complaints(phase)
    left = [c for c in module_caches if c in phase.after.slabinfo]
    if left:
        raise KernelAssertionError(f"caches still present after unload: {left}\n"
                                   + slab_table(phase, left))
    module = phase.command.command.split()[-1].strip("'")
    areas = phase.after.vmallocinfo.by_module(module)
    if len(areas):
        raise KernelAssertionError(f"{len(areas)} vmalloc area(s) of {module} remain after unload:\n"
                                   + "\n".join(f"  {e.size} bytes, {e.pages} pages, caller {e.caller or e.raw_caller}"
                                             for e in list(areas)[:10]))
