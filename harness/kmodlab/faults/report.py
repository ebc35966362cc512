"""The fault sweep as a table (rich, plain text) and as JSON."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from kmodlab.faults.sweep import FaultReport


def render_faults(report: FaultReport, width: int = 120) -> str:
    """One row per allocation site: path, the calls that hit it, the outcome and why."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, no_color=True)
    for sweep in report.sweeps:
        title = f"{sweep.module} on {sweep.kernel}: {sweep.path} path, {sweep.attribute}" + (
            f" ({sweep.command})" if sweep.command else "")
        table = Table(title=title, title_justify="left")
        for name in ("site", "calls", "outcome", "detail"):
            table.add_column(name, overflow="fold")
        for site in sweep.sites:
            calls = ",".join(map(str, site.runs[:6])) + ("…" if len(site.runs) > 6 else "")
            table.add_row(site.site, calls, site.outcome, site.detail or site.frame)
        if not sweep.sites:
            table.add_row("(none)", "", "", "no allocation of the module failed on this path")
        console.print(table)
        kernel_runs = sum(1 for r in sweep.runs if not r.judged)
        console.print(f"{len(sweep.runs)} calls failed one at a time ({kernel_runs} in the "
                      f"kernel's own code), {sweep.skipped} loader calls skipped in "
                      f"{sweep.probes} bisection runs, {sweep.seconds:.1f} s")
        for note in sweep.notes:
            console.print(f"note: {note}")
    bad = report.unhandled
    verdict = ("every allocation failure handled" if report.ok else
               f"{len(bad)} site(s) not handled: " + ", ".join(f"{s.site} {s.outcome}"
                                                              for s in bad[:5])
               if bad else "incomplete (see the notes)")
    console.print(f"{report.runs} runs in {report.seconds:.1f} s: {verdict}")
    return out.getvalue()
