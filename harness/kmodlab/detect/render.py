"""The detection matrix as Markdown (a table per arch) and as a dependency-free SVG bar chart."""

from __future__ import annotations

import html
from collections.abc import Sequence

from kmodlab.detect.matrix import Cell


def _columns(cells: Sequence[Cell], arch: str) -> list[str]:
    return list(dict.fromkeys(c.column for c in cells if c.arch == arch))


def _text(cell: Cell | None) -> str:
    if cell is None:
        return "not run"
    if not cell.detected:
        return "silent" if cell.outcome == "silent" else f"{cell.outcome}: {cell.note[:60]}"
    by = cell.by
    if cell.outcome == "leak" and "(kmemleak)" in cell.note and "kmemleak" not in by:
        by += " + kmemleak"      # results measured before "by" named every leak detector
    where = ""
    if cell.line:
        where = f" at {cell.line}" + (" (the bug)" if cell.at_bug_line else "")
    return f"**{by}**{where}"


def render_markdown(cells: Sequence[Cell], *, measured: str, command: str) -> str:
    """docs/detection.md: how it was measured, one table per arch, and the totals."""
    lines = ["# Which detector catches which bug (measured)", "",
             (f"Measured {measured} with `{command}`. Each cell is one run of the `bugs` family's "
             "class (`kmodlab run bugs -p bug=CLASS`) on that kernel, in a fresh guest: what "
             "reported it first, and the module line the report's frames name (\"the bug\": the "
             "statement marked `kmodlab: the bug`). \"silent\": nothing reported it and "
             "kmodlab's own leak check found nothing. Kernels: Debian's stock kernel, the same "
             "with the `slub-debug` boot parameters, and kernels built from Debian's source with "
             "the `debug-memory` and `debug-context` fragments (docs/debug-kernels.md). "
             "The expectations the runs are compared with are in modules/bugs/bugs.yaml."), "",
             "![detected bugs per kernel configuration](detection.svg)", ""]
    for arch in dict.fromkeys(c.arch for c in cells):
        columns = _columns(cells, arch)
        kernels = {c.column: c.kernel for c in cells if c.arch == arch}
        lines += [f"## {arch}", "",
                  "| bug | " + " | ".join(f"{col} ({kernels[col]})" for col in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        by_key = {(c.bug, c.column): c for c in cells if c.arch == arch}
        for bug in dict.fromkeys(c.bug for c in cells if c.arch == arch):
            lines.append(f"| {bug} | " + " | ".join(_text(by_key.get((bug, col)))
                                                    for col in columns) + " |")
        totals = []
        for col in columns:
            run = [c for c in cells if c.arch == arch and c.column == col]
            totals.append(f"{sum(c.detected for c in run)}/{len(run)} detected, "
                          f"{sum(c.at_bug_line for c in run)} at the bug's line")
        lines += ["| **total** | " + " | ".join(totals) + " |", ""]
    return "\n".join(lines) + "\n"


def render_svg(cells: Sequence[Cell]) -> str:
    """Grouped bars: bugs detected per configuration, one colour per arch."""
    arches = list(dict.fromkeys(c.arch for c in cells))
    columns = list(dict.fromkeys(c.column for c in cells))
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    most = max((len({c.bug for c in cells if c.arch == a}) for a in arches), default=1) or 1
    width, height, left, bottom, top = 120 + 150 * len(columns), 320, 60, 50, 40
    plot_h = height - bottom - top
    group = (width - left - 20) / max(len(columns), 1)
    bar = group / (len(arches) + 1)
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">'),
           (f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">bug classes '
           f'detected, by kernel configuration</text>')]
    for tick in range(0, most + 1, max(1, most // 5)):
        y = top + plot_h - plot_h * tick / most
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    for i, col in enumerate(columns):
        x0 = left + i * group + bar / 2
        for j, arch in enumerate(arches):
            run = [c for c in cells if c.arch == arch and c.column == col]
            n = sum(c.detected for c in run)
            h = plot_h * n / most
            x = x0 + j * bar
            out.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{colours[j % len(colours)]}"><title>'
                       f'{html.escape(arch)} {html.escape(col)}: {n}/{len(run)}</title></rect>')
            out.append(f'<text x="{x + bar * 0.45:.1f}" y="{top + plot_h - h - 4:.1f}" '
                       f'text-anchor="middle">{n}</text>')
        out.append(f'<text x="{left + i * group + group / 2:.1f}" y="{height - bottom + 18}" '
                   f'text-anchor="middle">{html.escape(col)}</text>')
    for j, arch in enumerate(arches):
        out.append(f'<rect x="{left + j * 110}" y="{height - 18}" width="12" height="12" '
                   f'fill="{colours[j % len(colours)]}"/><text x="{left + j * 110 + 16}" '
                   f'y="{height - 8}">{html.escape(arch)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


__all__ = ["render_markdown", "render_svg"]
