"""Render a module run for people (tables) or machines (JSON)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table

from kmodlab.leaks import LeakReport
from kmodlab.observe import diff_buddyinfo, diff_meminfo, diff_slabinfo, diff_vmallocinfo
from kmodlab.runner import ModuleRun, Phase

MEMINFO_KEYS = ("MemFree", "Slab", "SReclaimable", "SUnreclaim", "VmallocUsed", "Percpu")


def phase_changes(phase: Phase) -> dict[str, Any]:
    """What the phase changed in /proc, as plain data."""
    slab = diff_slabinfo(phase.before.slabinfo, phase.after.slabinfo)
    buddy = diff_buddyinfo(phase.before.buddyinfo, phase.after.buddyinfo)
    vmalloc = diff_vmallocinfo(phase.before.vmallocinfo, phase.after.vmallocinfo)
    meminfo = diff_meminfo(phase.before.meminfo, phase.after.meminfo)
    return {
        "slabinfo": {
            "appeared": {n: _cache(c) for n, c in slab.appeared.items()},
            "disappeared": sorted(slab.disappeared),
            "changed": {n: {"active_objs": d.active_objs, "num_objs": d.num_objs,
                            "num_slabs": d.num_slabs} for n, d in slab.changed.items()},
        },
        "buddyinfo": {f"{node}/{zone}": list(delta) for (node, zone), delta in buddy.items()
                      if any(delta)},
        "vmallocinfo": {k: {"count": d.count, "size": d.size, "pages": d.pages}
                        for k, d in vmalloc.items()},
        "meminfo_kb": {k: v for k, v in meminfo.items() if k in MEMINFO_KEYS},
    }


def _cache(c: Any) -> dict[str, int]:
    return {"active_objs": c.active_objs, "num_objs": c.num_objs, "objsize": c.objsize,
            "objperslab": c.objperslab, "pagesperslab": c.pagesperslab}


def run_to_dict(run: ModuleRun) -> dict[str, Any]:
    def phase(p: Phase | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {
            "ok": p.ok, "command": p.command.command, "exit_status": p.command.exit_status,
            "output": p.command.output, "seconds": round(p.seconds, 4),
            "tests": [{"name": r.name, "status": r.status, "values": r.values}
                      for doc in p.ktap for _path, r in doc.walk()],
            "events": [{"kind": e.kind, "subject": e.subject, "excerpt": e.excerpt,
                        "source": run.built.source_lines(e.excerpt)}
                       for e in p.events],
            "changes": phase_changes(p),
        }

    return {"module": run.built.module_name, "family": run.built.family,
            "kernel": run.built.kernel_release, "ok": run.ok, "verdict": run.verdict,
            "build": {"cached": run.built.cached, "warnings": list(run.built.warnings),
                      "log": str(run.built.log_path)},
            "load": phase(run.load), "unload": phase(run.unload),
            "leaks": leaks_to_dict(run.leaks)}


def leaks_to_dict(report: LeakReport | None) -> dict[str, Any] | None:
    """The leak detector's verdict as plain data (None when it did not run)."""
    if report is None:
        return None
    data = report.as_dict()
    m = report.measurement
    data["measured"] = {
        "slab_growth": {g.cache: {"objects": g.objects, "bytes": g.bytes}
                        for g in m.slab if g.objects > 0},
        "caches_left": [key for key, _cache in m.caches_left],
        "module_vmalloc_areas": [{"caller": a.caller, "shown_as": str(a.entry.caller or
                                                                      a.entry.raw_caller),
                                  "size": a.entry.size, "pages": a.entry.pages, "how": a.how}
                                 for a in m.module_areas],
        "other_vmalloc_pages": m.other_area_pages,
        "free_pages_lost": m.free_pages_lost,
        "unaccounted_kb": m.unaccounted_kb,
        "percpu_kb": m.percpu_kb,
    }
    return data


def leak_lines(report: LeakReport | None) -> list[str]:
    """What ``kmodlab run`` prints about leaks: one line per leak, and why each is one."""
    if report is None:
        return ["leak check: not run (switched off, or rmmod did not succeed)"]
    t = report.tolerances
    if report.clean:
        m = report.measurement
        grown = max(m.slab, key=lambda g: g.bytes, default=None)
        largest = f"{grown.cache} +{grown.objects} objects" if grown and grown.objects > 0 \
            else "none"
        return [(f"leak check: nothing left behind (largest slab growth: {largest}; "
                 f"tolerances {t.slab_objects} objects and {t.slab_bytes // 1024} KiB per "
                 f"cache, {t.pages} pages, {t.percpu_kb} kB per-CPU)")]
    lines = [f"leak check: {report.summary()}"]
    for leak in report.leaks:
        if leak.kind == "slab":
            why = (leak.detail or f"tolerance {t.slab_objects} objects and "
                                  f"{t.slab_bytes // 1024} KiB per cache")
            lines.append(f"  slab: {leak.describe()}: active_objs after rmmod minus before "
                         f"insmod ({why})")
        elif leak.kind == "pages":
            lines.append(f"  pages: {leak.describe()} (tolerance {t.pages} pages)")
        elif leak.kind == "percpu":
            lines.append(f"  per-CPU: {leak.describe()} (tolerance {t.percpu_kb} kB)")
        else:
            lines.append(f"  {leak.kind}: {leak.describe()}")
    for area in report.measurement.module_areas[:10]:
        e = area.entry
        lines.append(f"    vmallocinfo: {e.size} bytes, {e.pages} pages, caller "
                     f"{e.caller or e.raw_caller} ({area.how})")
    lines += [f"  note: {note}" for note in report.notes]
    return lines


def render_run(run: ModuleRun, width: int = 140) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, no_color=True)
    console.print(f"{run.built.module_name} on {run.built.kernel_release}: {run.verdict}",
                  markup=False, highlight=False)
    for warning in run.built.warnings:
        console.print(f"build: {warning}", markup=False, highlight=False)
    for p in (run.load, run.unload):
        if p is None:
            console.print("unload: not attempted (the module did not load)")
            continue
        table = Table(title=f"phase {p.name}: {p.command.command} -> exit {p.command.exit_status}"
                      f" ({p.seconds * 1000:.0f} ms)", title_justify="left")
        table.add_column("test point")
        table.add_column("status")
        table.add_column("values")
        for doc in p.ktap:
            for _path, r in doc.walk():
                values = " ".join(f"{k}={v}" for k, v in r.values.items())
                table.add_row(r.name, r.status, values)
        console.print(table)
        if p.command.output.strip():
            console.print(f"output: {p.command.output.strip()[:2000]}")
        for e in p.complaints:
            console.print(f"kernel event: {e.kind}: {e.subject}", markup=False,
                          highlight=False)
            for line in run.built.source_lines(e.excerpt):
                console.print(f"  {line}", markup=False, highlight=False)
        changes = phase_changes(p)
        for section, data in changes.items():
            if any(data.values()) if isinstance(data, dict) else data:
                console.print(f"{section}: {data}")
    if run.unload is not None and run.unload.command.ok:
        for line in leak_lines(run.leaks):
            console.print(line, markup=False, highlight=False)
    return out.getvalue()
