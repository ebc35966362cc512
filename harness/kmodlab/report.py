"""Render a module run for people (tables) or machines (JSON)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table

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
            "events": [{"kind": e.kind, "subject": e.subject, "excerpt": e.excerpt}
                       for e in p.events],
            "changes": phase_changes(p),
        }

    return {"module": run.built.module_name, "family": run.built.family,
            "kernel": run.built.kernel_release, "ok": run.ok,
            "load": phase(run.load), "unload": phase(run.unload)}


def render_run(run: ModuleRun, width: int = 140) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, no_color=True)
    console.print(f"{run.built.module_name} on {run.built.kernel_release}: "
                  f"{'OK' if run.ok else 'FAILED'}")
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
            console.print(f"kernel event: {e.kind}: {e.subject}")
        changes = phase_changes(p)
        for section, data in changes.items():
            if any(data.values()) if isinstance(data, dict) else data:
                console.print(f"{section}: {data}")
    return out.getvalue()
