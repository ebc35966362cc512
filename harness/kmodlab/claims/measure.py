"""Run the claims' probes on one booted kernel and collect their KTAP values.

One guest per kernel: every probe module is built first (a build error is recorded against
its probe, the others still run), then loaded, observed and unloaded in turn with
:func:`kmodlab.runner.run_module`.  While the guest is up, its slab state is stored as a
capture (:mod:`kmodlab.claims.captures`) for ``kmodlab model cache``'s merge prediction, and
the boot log's ``mem auto-init`` line is kept as a fact.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable

from kmodlab.claims.captures import capture_from_guest
from kmodlab.claims.catalog import Probe
from kmodlab.claims.observations import MEMORY_TEST, Observations, Values
from kmodlab.claims.probe_module import build_probe_module
from kmodlab.errors import KmodlabError
from kmodlab.guest import Guest, GuestOptions
from kmodlab.guest_tools import install_tools
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import BuiltModule, build, parse_params
from kmodlab.runner import ModuleRun, run_module

log = logging.getLogger("kmodlab.claims")

Report = Callable[[str], None]
RUN_TIMEOUT = 180.0      # the timing probe runs thousands of allocations under TCG


def build_probe(probe: Probe, kernel: Kernel) -> BuiltModule:
    """The .ko of one probe for ``kernel`` (cached by the module builder)."""
    if probe.family is not None:
        return build(probe.family, parse_params(probe.family, probe.params), kernel)
    assert probe.module is not None
    return build_probe_module(probe.module, kernel, probe.args)


def ktap_values(run: ModuleRun) -> tuple[dict[str, Values], dict[str, str]]:
    """Values and status of every load-phase test point, by test name.  Only the
    diagnostics that name the test count (``# <test>: k=v``), not the document header."""
    values: dict[str, Values] = {}
    status: dict[str, str] = {}
    for doc in run.load.ktap:
        for _path, result in doc.walk():
            values[result.name] = dict(result.values_by_name.get(result.name, {}))
            status[result.name] = result.status
    return values, status




def memory_held(run: ModuleRun) -> Values:
    """What the loaded module took from CMA: ``cma_kb`` = -ΔCmaFree across insmod (the load
    phase's snapshots, slab caches shrunk before).  Empty without CMA or snapshots.  (The
    pages it took from the buddy allocator are counted by ``kmodlab check dma``, which also
    reads the per-CPU lists.)"""
    before, after = run.load.before, run.load.after
    if before is None or after is None:
        return {}
    if "CmaFree" in before.meminfo.data and "CmaFree" in after.meminfo.data:
        return {"cma_kb": before.meminfo.kb("CmaFree") - after.meminfo.kb("CmaFree")}
    return {}


REPORTS_TEST = "kernel_reports"
"""The pseudo test holding how many kernel reports of each kind (observe.dmesg) the load
printed, benign ones included (e.g. alloc_failure: mm/page_alloc.c:warn_alloc())."""


def slabinfo_test(cache: str) -> str:
    """The pseudo test a probe's slabinfo report on ``cache`` is stored under."""
    return f"slabinfo {cache}"


def vmstat_test(cache: str) -> str:
    """The pseudo test a probe's ``vmstat -m`` row of ``cache`` is stored under."""
    return f"vmstat -m {cache}"


VMSTAT_AND_SLABINFO = "vmstat -m; echo '--- slabinfo'; cat /proc/slabinfo"
"""procps' table and the kernel's, read back to back (nothing allocates between them in an idle
guest: the figures are the same moment's)."""


def vmstat_values(text: str, caches: tuple[str, ...]) -> dict[str, Values]:
    """Per cache: vmstat's row (num, total, size, pages) beside /proc/slabinfo's objperslab,
    pagesperslab and active_slabs from the same command (:data:`VMSTAT_AND_SLABINFO`)."""
    from kmodlab.observe.slabinfo import parse_slabinfo
    from kmodlab.observe.vmstat_slabs import parse_vmstat_slabs

    vmstat_text, _, slabinfo_text = text.partition("--- slabinfo\n")
    table, slabinfo = parse_vmstat_slabs(vmstat_text), parse_slabinfo(slabinfo_text)
    out: dict[str, Values] = {}
    for cache in caches:
        row, line = table.row_for(cache), slabinfo.get(cache)
        if row is None or line is None:
            continue
        out[vmstat_test(cache)] = {
            "num": row.num, "total": row.total, "size": row.size, "pages": row.pages,
            "objperslab": line.objperslab, "pagesperslab": line.pagesperslab,
            "active_slabs": line.active_slabs}
    return out


def run_with_slabinfo(guest: Guest, kernel: Kernel, module: BuiltModule,
                      caches: tuple[str, ...]) -> tuple[ModuleRun, dict[str, Values]]:
    """Load ``module``, report on ``caches`` with the kernel's slabinfo tool (each shrunk
    first) and with procps' ``vmstat -m``, unload.  A cache the tool did not report on alone
    gets no slabinfo values."""
    from dataclasses import asdict

    from kmodlab.check.slabinfo_tool import TOOL, report_command
    from kmodlab.observe.slabinfo_tool import parse_report
    from kmodlab.phases import shrink_command
    from kmodlab.runner import LoadedModule

    install_tools(guest, kernel, (TOOL,))
    loaded = LoadedModule(guest, module)
    load = loaded.load(timeout=RUN_TIMEOUT)
    reports: dict[str, Values] = {}
    if loaded.loaded:
        for cache in caches:
            report = parse_report(guest.run(report_command(cache), isolate=False).stdout)
            if report is not None:
                reports[slabinfo_test(cache)] = asdict(report)
        tables = guest.run(f"{shrink_command(caches)}; {VMSTAT_AND_SLABINFO}", isolate=False,
                           must_succeed=True)
        reports.update(vmstat_values(tables.stdout, caches))
    unload = loaded.unload(timeout=RUN_TIMEOUT) if loaded.loaded else None
    return ModuleRun(module, load, unload), reports


def read_facts(guest: Guest) -> dict[str, str]:
    """Boot-time facts the checks quote: init_on_alloc/free as the kernel reported them."""
    facts: dict[str, str] = {}
    out = guest.run("dmesg | grep -m1 'mem auto-init' || true").stdout.strip()
    if out:
        facts["mem_auto_init"] = out.split("] ", 1)[-1]
    cmdline = guest.run("cat /proc/cmdline").stdout.strip()
    if cmdline:
        facts["cmdline"] = cmdline
    return facts


def build_probes(kernel: Kernel, probes: Iterable[Probe], obs: Observations,
                 report: Report = log.info) -> dict[str, BuiltModule]:
    """Every probe's module for ``kernel``; a build failure is recorded in ``obs.errors``."""
    built: dict[str, BuiltModule] = {}
    for probe in probes:
        try:
            built[probe.name] = build_probe(probe, kernel)
        except KmodlabError as exc:
            obs.errors[probe.name] = f"build failed: {exc}"
            report(f"{kernel.label}: {probe.name}: build failed")
    return built


def measure_on_guest(guest: Guest, kernel: Kernel, probes: Iterable[Probe], *,
                     capture: bool = True, report: Report = log.info) -> Observations:
    """Run every probe on a booted ``guest`` of ``kernel``.  Failures are recorded, not
    raised, so one broken probe does not hide the others' results.  ``capture`` also stores
    the guest's slab state (do it on a freshly booted guest: loaded modules add caches)."""
    probes = list(probes)
    obs = Observations(kernel.release, kernel.label, guest.options.cpus,
                       time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    built = build_probes(kernel, probes, obs, report)
    obs.facts.update(read_facts(guest))
    if capture:
        try:
            capture_from_guest(guest, kernel)
        except KmodlabError as exc:
            report(f"{kernel.label}: slab capture failed: {exc}")
    by_name = {p.name: p for p in probes}
    for name, module in built.items():
        probe = by_name[name]
        try:
            if probe.arm == "failslab":
                from kmodlab.faults.injection import failing_task_command

                guest.run(failing_task_command(), isolate=False, must_succeed=True)
            install_tools(guest, kernel, probe.tools)
            for command in probe.setup:
                guest.run(command, timeout=RUN_TIMEOUT, isolate=False, must_succeed=True)
            if probe.slabinfo:
                run, reports = run_with_slabinfo(guest, kernel, module, probe.slabinfo)
            else:
                run, reports = run_module(guest, module, timeout=RUN_TIMEOUT), {}
            for command in probe.teardown:
                guest.run(command, timeout=RUN_TIMEOUT, isolate=False, must_succeed=True)
        except KmodlabError as exc:
            obs.errors[name] = f"run failed: {str(exc).splitlines()[0]}"
            report(f"{kernel.label}: {name}: {obs.errors[name]}")
            continue
        obs.probes[name], obs.status[name] = ktap_values(run)
        if held := memory_held(run):
            obs.probes[name][MEMORY_TEST] = held
        obs.probes[name].update(reports)
        obs.probes[name][REPORTS_TEST] = dict(Counter(e.kind for e in run.load.events))
        obs.events[name] = [f"{e.kind}: {e.subject}" for e in run.load.complaints]
        failed = [t for t, s in obs.status[name].items() if s not in ("pass", "skip")]
        report(f"{kernel.label}: {name}: {len(obs.status[name])} test points"
               + (f", not ok: {', '.join(failed)}" if failed else ", all ok"))
    return obs


def measure_kernel(kernel: Kernel, probes: Iterable[Probe], options: GuestOptions | None = None,
                   report: Report = log.info) -> Observations:
    """Boot ``kernel`` once (a guest of its own) and run every probe on it."""
    probes = list(probes)
    with Guest(kernel, options or GuestOptions()) as guest:
        return measure_on_guest(guest, kernel, probes, report=report)
