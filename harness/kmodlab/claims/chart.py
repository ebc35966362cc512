"""Draw the waste chart: PNG (or PDF/SVG) with matplotlib, or a dependency-free SVG.

matplotlib is optional (the ``charts`` extra); :func:`render` picks the renderer from the
file's suffix: ``.svg``/``.html`` never need matplotlib, ``.png`` does and says how to get it.
Two panels share a log2 size axis: wasted bytes, and wasted share of the allocated slot.
Identical series are named as such in the legend ("= x86_64 6.1") rather than silently drawn
on top of each other; measured points use one hollow marker per kernel, and a point whose
measured ksize differs from the model is drawn as a red cross.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

from kmodlab.claims.waste import MAX_SIZE, MeasuredPoint, WasteSeries, same_as, smallest_slots
from kmodlab.errors import ConfigError

INSTALL_HINT = ("matplotlib is not installed; install the charts extra "
                "(pip install 'kmodlab[charts]', or .venv/bin/pip install matplotlib), "
                "or write an SVG, which needs nothing: --out docs/waste.svg")

# One style per series, in target order (x86_64 6.1, x86_64 6.12, arm64 6.1, arm64 6.12).
COLOURS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd")
MARKERS = ("o", "s", "^", "D")
TITLE = "kmalloc internal waste by requested size (model lines; markers: measured ksize)"


def _legend_label(s: WasteSeries, twins: dict[str, str]) -> str:
    twin = twins.get(s.label)
    return f"{s.label} (= {twin})" if twin else s.label


def render(series: Sequence[WasteSeries], points: Sequence[MeasuredPoint], out: Path) -> Path:
    """Write the chart to ``out`` in the format its suffix names."""
    if not series:
        raise ConfigError("no series to draw")
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".svg", ".html"):
        svg = render_svg(series, points)
        if suffix == ".html":
            svg = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(TITLE)}</title>"
                   f"<body style='font-family:sans-serif'>{svg}</body>")
        out.write_text(svg)
        return out
    if suffix not in (".png", ".pdf"):
        raise ConfigError(f"cannot draw {out.name}: use .png or .pdf (matplotlib), or .svg / "
                          ".html (built in)")
    render_matplotlib(series, points, out)
    return out


def render_matplotlib(series: Sequence[WasteSeries], points: Sequence[MeasuredPoint],
                      out: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    twins = same_as(series)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 9), sharex=True, dpi=110)
    # Distinct series first and solid; a series identical to an earlier one is drawn thinner
    # and dashed on top, so both stay visible.
    for i, s in enumerate(series):
        style = {"color": COLOURS[i % len(COLOURS)], "label": _legend_label(s, twins)}
        if s.label in twins:
            style.update(linewidth=1.4, linestyle=(0, (4, 3)))
        else:
            style.update(linewidth=2.4 if i == 0 else 1.8, alpha=0.85)
        top.plot(s.sizes, s.waste_bytes, **style)
        bottom.plot(s.sizes, s.waste_percent, **style)
    labels = [s.label for s in series]
    for p in points:
        i = labels.index(p.label) if p.label in labels else 0
        for ax, y in ((top, p.waste_bytes), (bottom, p.waste_percent)):
            if p.agrees:
                ax.plot([p.size], [y], linestyle="none", marker=MARKERS[i % len(MARKERS)],
                        markersize=7 + 2 * (len(series) - 1 - i), markerfacecolor="none",
                        markeredgecolor=COLOURS[i % len(COLOURS)], markeredgewidth=1.3)
            else:
                ax.plot([p.size], [y], linestyle="none", marker="X", markersize=11,
                        color="red")
    if points:
        for i, label in enumerate(labels):
            if any(p.label == label for p in points):
                top.plot([], [], linestyle="none", marker=MARKERS[i % len(MARKERS)],
                         markerfacecolor="none", markeredgecolor=COLOURS[i % len(COLOURS)],
                         label=f"measured {label}")
        if any(not p.agrees for p in points):
            top.plot([], [], linestyle="none", marker="X", color="red",
                     label="measured != model")
    ticks = [1 << k for k in range(14)]
    for ax in (top, bottom):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v)}"))
        ax.set_xlim(0.85, MAX_SIZE * 1.18)
        ax.grid(True, which="major", alpha=0.3)
    top.set_ylabel("wasted bytes  (ksize − size)")
    top.set_yscale("symlog", linthresh=16, base=2)
    top.yaxis.set_major_locator(FixedLocator([0] + [1 << k for k in range(2, 13)]))
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(v)}"))
    top.set_ylim(0, MAX_SIZE * 0.75)
    bottom.set_ylabel("wasted share of the slot (%)")
    bottom.set_ylim(0, 100)
    # ksize == 2 * n is exactly half the slot wasted: LDD3's "up to twice as much".
    half = bottom.axhline(50, color="grey", linewidth=1.2, linestyle=":",
                          label="50% wasted: ksize = 2 × size (LDD3's \"up to twice as much\")")
    bottom.legend(handles=[half], loc="upper right", fontsize=9, framealpha=0.9)
    bottom.set_xlabel("requested size n in kmalloc(n, GFP_KERNEL), bytes (log scale)")
    top.legend(loc="upper left", fontsize=9, ncol=2, framealpha=0.9)
    configs = ", ".join(sorted({s.config for s in series}))
    fig.suptitle(TITLE, fontsize=13)
    top.set_title(f"model config: {configs}\nsmallest slot (KMALLOC_MIN_SIZE): "
                  f"{smallest_slots(series)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


# ----------------------------------------------------------------------------- SVG fallback
W, H = 1000, 700
LEFT, RIGHT, TOP = 80, 20, 60
PANEL_H, GAP = 260, 60


def _x(n: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * math.log2(max(n, 1)) / math.log2(MAX_SIZE)


def _y(v: float, vmax: float, panel: int, log: bool) -> float:
    top = TOP + panel * (PANEL_H + GAP)
    frac = (math.log2(1 + v) / math.log2(1 + vmax)) if log else v / vmax
    return top + PANEL_H * (1 - min(max(frac, 0.0), 1.0))


def render_svg(series: Sequence[WasteSeries], points: Sequence[MeasuredPoint]) -> str:
    """The same two panels as plain SVG (log2 x axis; bytes on a log2(1 + y) axis)."""
    twins = same_as(series)
    vmax = max(max(s.waste_bytes) for s in series)
    parts = [(f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' "
             f"font-family='sans-serif' font-size='12'>"),
             f"<rect width='{W}' height='{H}' fill='white'/>",
             (f"<text x='{W / 2}' y='24' text-anchor='middle' font-size='16'>"
             f"{html.escape(TITLE)}</text>")]
    for panel, (name, top_value, log) in enumerate((("wasted bytes", vmax, True),
                                                    ("wasted share of the slot (%)", 100, False))):
        y0, y1 = _y(0, top_value, panel, log), _y(top_value, top_value, panel, log)
        parts.append(f"<text x='14' y='{(y0 + y1) / 2}' transform='rotate(-90 14 "
                     f"{(y0 + y1) / 2})' text-anchor='middle'>{name}</text>")
        for k in range(14):
            x = _x(1 << k)
            parts.append(f"<line x1='{x:.1f}' y1='{y1}' x2='{x:.1f}' y2='{y0}' stroke='#ddd'/>")
            parts.append(f"<text x='{x:.1f}' y='{y0 + 14}' text-anchor='middle' "
                         f"font-size='10'>{1 << k}</text>")
        ticks = [0, 16, 128, 1024, 4096] if log else [0, 25, 50, 75, 100]
        for v in ticks:
            y = _y(v, top_value, panel, log)
            parts.append(f"<line x1='{LEFT}' y1='{y:.1f}' x2='{W - RIGHT}' y2='{y:.1f}' "
                         "stroke='#eee'/>")
            parts.append(f"<text x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end' "
                         f"font-size='10'>{v}</text>")
        for i, s in enumerate(series):
            values = s.waste_bytes if panel == 0 else s.waste_percent
            path = " ".join(f"{_x(n):.1f},{_y(v, top_value, panel, log):.1f}"
                            for n, v in zip(s.sizes, values, strict=True))
            dash = " stroke-dasharray='5 4'" if s.label in twins else ""
            width = 1 if s.label in twins else 2
            parts.append(f"<polyline fill='none' stroke='{COLOURS[i % len(COLOURS)]}' "
                         f"stroke-width='{width}'{dash} points='{path}'/>")
        for p in points:
            i = [s.label for s in series].index(p.label) if any(
                s.label == p.label for s in series) else 0
            v = p.waste_bytes if panel == 0 else p.waste_percent
            colour = COLOURS[i % len(COLOURS)] if p.agrees else "red"
            parts.append(f"<circle cx='{_x(p.size):.1f}' cy='{_y(v, top_value, panel, log):.1f}' "
                         f"r='{4 + i}' fill='none' stroke='{colour}'/>")
    for i, s in enumerate(series):
        y = TOP + 14 + 16 * i
        dash = " stroke-dasharray='5 4'" if s.label in twins else ""
        parts.append(f"<line x1='{LEFT + 10}' y1='{y - 4}' x2='{LEFT + 40}' y2='{y - 4}' "
                     f"stroke='{COLOURS[i % len(COLOURS)]}' stroke-width='2'{dash}/>")
        parts.append(f"<text x='{LEFT + 46}' y='{y}'>{html.escape(_legend_label(s, twins))}</text>")
    parts.append(f"<text x='{W / 2}' y='{H - 12}' text-anchor='middle'>requested size n in "
                 "kmalloc(n), bytes (log scale); circles: measured ksize</text>")
    parts.append("</svg>")
    return "\n".join(parts)
