"""Rows every probe gets, whatever its family: the module loaded and unloaded cleanly, printed
no failing KTAP test, the kernel reported nothing (no WARN, no slab leak), and what the module
owned (its slab caches, its vmalloc areas) is gone after unload."""

from __future__ import annotations

from collections.abc import Iterable

from kmodlab.check.observation import Observation
from kmodlab.check.rows import Rows
from kmodlab.runner import Phase, ProcSnapshot

R_INSMOD = "kernel/module/main.c:load_module() + do_init_module()"
R_RMMOD = "kernel/module/main.c:delete_module() -> mod->exit()"
R_EVENTS = "kernel log: no oops/BUG/WARNING/slab-leak report (kmodlab.observe.dmesg)"
R_KTAP = "module self-checks (KTAP 'not ok' lines)"
R_CACHE_GONE = "mm/slab_common.c:kmem_cache_destroy() -> shutdown_cache(): list_del(&s->list)"
R_VMAP_GONE = "mm/vmalloc.c:vfree() -> remove_vm_area(): the area leaves vmallocinfo"


def populated_zones(snapshot: ProcSnapshot, node: int = 0) -> list[str]:
    """The zones /proc/buddyinfo lists for ``node`` (only populated zones are printed)."""
    return [zone for n, zone in snapshot.buddyinfo if n == node]


def _failed_tests(phase: Phase) -> list[str]:
    """Failing KTAP results, and format errors (a plan the module did not keep, a bail-out)."""
    failed = [r.name for doc in phase.ktap for _p, r in doc.walk() if not r.passed]
    return failed + [issue.message for doc in phase.ktap for issue in doc.all_errors()]


def _events(phase: Phase) -> list[str]:
    return [f"{e.kind}: {e.subject}" for e in phase.complaints]


def lifecycle_rows(rows: Rows, obs: Observation, own_caches: Iterable[str] = ()) -> None:
    """Load/unload status, self-checks, kernel events, and the module's caches and vmalloc
    areas gone after unload."""
    with rows.grouped("clean load and unload"):
        _lifecycle(rows, obs, own_caches)


def _lifecycle(rows: Rows, obs: Observation, own_caches: Iterable[str]) -> None:
    load, unload = obs.load, obs.unload
    rows.exact("insmod", "exit status", 0, load.command.exit_status, R_INSMOD)
    rows.exact("insmod", "KTAP results printed", "some",
               "some" if any(doc.results for doc in load.ktap) else None, R_KTAP)
    rows.exact("insmod", "failed self-checks", "none",
               ", ".join(_failed_tests(load)) or "none", R_KTAP)
    rows.exact("insmod", "kernel reports", "none", ", ".join(_events(load)) or "none", R_EVENTS)
    if unload is None:
        rows.exact("rmmod", "exit status", 0, None, R_RMMOD, "the module did not load")
        return
    rows.exact("rmmod", "exit status", 0, unload.command.exit_status, R_RMMOD)
    rows.exact("rmmod", "failed self-checks", "none",
               ", ".join(_failed_tests(unload)) or "none", R_KTAP)
    rows.exact("rmmod", "kernel reports (leaks, WARNs)", "none",
               ", ".join(_events(unload)) or "none", R_EVENTS)
    after = unload.after
    for cache in own_caches:
        rows.exact(f"rmmod {cache}", "slabinfo line after unload", "absent",
                   "present" if cache in after.slabinfo else "absent", R_CACHE_GONE)
    areas = after.vmallocinfo.by_module(obs.module)
    rows.exact(f"rmmod [{obs.module}]", "vmallocinfo areas after unload", 0, len(areas),
               R_VMAP_GONE)


def active_delta(obs: Observation, cache: str) -> int | None:
    """held - baseline active_objs of ``cache`` (both taken right after shrinking it)."""
    if obs.held is None or cache not in obs.held.slabinfo:
        return None
    before = obs.baseline.slabinfo[cache].active_objs if cache in obs.baseline.slabinfo else 0
    return obs.held.slabinfo[cache].active_objs - before


def released_delta(obs: Observation, cache: str) -> int | None:
    """released - baseline active_objs of ``cache``: what unload left behind."""
    if obs.released is None or cache not in obs.released.slabinfo:
        return None
    before = obs.baseline.slabinfo[cache].active_objs if cache in obs.baseline.slabinfo else 0
    return obs.released.slabinfo[cache].active_objs - before


def objsize(obs: Observation, cache: str) -> int | None:
    """The cache's s->size as /proc/slabinfo shows it (objsize)."""
    for snap in (obs.held, obs.baseline):
        if snap is not None and cache in snap.slabinfo:
            return snap.slabinfo[cache].objsize
    return None


def objperslab(obs: Observation, cache: str) -> int | None:
    for snap in (obs.held, obs.baseline):
        if snap is not None and cache in snap.slabinfo:
            return snap.slabinfo[cache].objperslab
    return None
