"""Reports of graded submissions: per student (Markdown, JSON, JUnit XML, Gradescope JSON) and
per class (CSV, HTML with inline SVG charts, summary JSON).

Student-controlled text is escaped for each format by :mod:`kmodlab.labs.escape`.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from kmodlab.labs.escape import csv_cell, html_text, md_block, md_code, md_inline, slug, xml_text
from kmodlab.labs.lab import Lab
from kmodlab.labs.results import Outcome, StudentResult

ICON = {"passed": "✅", "failed": "❌", "not_run": "⏭️"}
HARNESS_NOTE = ("The grader itself failed on this submission (a harness error). This is not "
                "charged to the student; rerun the same `kmodlab lab grade` command to retry.")


def _score_text(result: StudentResult) -> str:
    if result.score is None:
        return f"not graded / {result.max_score:g}"
    return f"{result.score:g} / {result.max_score:g}"


# ------------------------------------------------------------------------------ Markdown
def student_markdown(lab: Lab, result: StudentResult, show_hidden: bool = True) -> str:
    out: list[str] = []
    checks = [c for c in result.checks if show_hidden or not c.hidden]
    out.append(f"# {md_inline(lab.title)}")
    out.append("")
    out.append(f"Report for **{md_inline(result.student)}**: "
               f"**{result.outcome.label}**, score **{_score_text(result)}**")
    out.append("")
    targets = ", ".join(t.target for t in result.targets) or "-"
    out.append(f"Graded on {md_inline(targets)} at {md_inline(result.graded_at)} "
               f"(lab {md_code(lab.id)}, submission {result.submission_digest[:12] or '-'})")
    if result.public_only:
        out.append("")
        out.append("Public checks only: the grader also runs hidden checks.")
    if result.params:
        out.append("")
        out.append("Parameters: " + ", ".join(f"{md_code(k)} = {md_code(v)}"
                                             for k, v in result.params.items()))
    if result.outcome is Outcome.HARNESS_ERROR:
        out += ["", f"> **Harness error.** {HARNESS_NOTE}"]
    out += ["", "## Checks", "", "| | Check | Points |", "|---|---|---|"]
    for c in checks:
        hidden = " (hidden)" if c.hidden else ""
        out.append(f"| {ICON.get(c.status, '?')} | {md_inline(c.name)}{hidden} | "
                   f"{c.points:g} / {c.max_points:g} |")
    failed = [c for c in checks if c.status == "failed"]
    ended = result.outcome in (Outcome.CRASH, Outcome.HANG)
    unobserved = [c for c in failed if ended and c.observed in ("-", "not printed", "")]
    failed = [c for c in failed if c not in unobserved]
    if failed or unobserved:
        out += ["", "## What failed"]
        if unobserved:
            out += ["", f"Not observed, because the run ended in a {result.outcome.label}:", ""]
            out += [f"- {md_inline(c.name)}: {md_inline(c.message, 300)}" for c in unobserved]
        for c in failed:
            out += ["", f"### {md_inline(c.name)}", ""]
            if c.description:
                out.append(md_inline(c.description, 1000))
                out.append("")
            if c.expected:
                out.append("Expected:")
                out.append(md_block(c.expected, 4000))
            if c.observed:
                out.append("Observed:")
                out.append(md_block(c.observed, 6000))
            if c.message:
                out.append(f"Note: {md_inline(c.message, 2000)}")
    for t in result.targets:
        parts: list[str] = []
        if t.outcome is Outcome.COMPILE_ERROR and t.build_output:
            parts += ["Compiler output:", md_block(t.build_output)]
        elif t.build_output:
            parts += ["Compiler warnings:", md_block(t.build_output, 8000)]
        if t.crash:
            parts += ["Kernel report:" if t.outcome is Outcome.CRASH else "What hung:",
                      md_block(t.crash, 8000)]
        if t.error:
            parts += ["Harness error (not charged):", md_block(t.error, 4000)]
        if t.notes:
            parts += [f"- {md_inline(n, 600)}" for n in t.notes]
        if parts:
            out += ["", f"## {md_inline(t.target)}: {t.outcome.label}", "", *parts]
    if result.notes:
        out += ["", "## Files", ""] + [f"- {md_inline(n, 300)}" for n in result.notes]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------ JUnit
def student_junit(lab: Lab, result: StudentResult, show_hidden: bool = True) -> str:
    checks = [c for c in result.checks if show_hidden or not c.hidden]
    failures = sum(1 for c in checks if c.status == "failed")
    skipped = sum(1 for c in checks if c.status == "not_run")
    errors = 1 if result.outcome is Outcome.HARNESS_ERROR else 0
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", {
        "name": xml_text(f"{lab.id}.{result.student}", 300), "tests": str(len(checks)),
        "failures": str(failures), "errors": str(errors), "skipped": str(skipped),
        "time": f"{result.seconds:.3f}", "timestamp": xml_text(result.graded_at)})
    props = ET.SubElement(suite, "properties")
    for key, value in (("outcome", result.outcome.value), ("score", _score_text(result)),
                       *((f"param.{k}", v) for k, v in result.params.items())):
        ET.SubElement(props, "property", {"name": xml_text(key, 200), "value": xml_text(value, 500)})
    for c in checks:
        case = ET.SubElement(suite, "testcase", {"classname": xml_text(lab.id, 200),
                                                 "name": xml_text(c.name, 300)})
        if c.status == "failed":
            fail = ET.SubElement(case, "failure", {"message": xml_text(
                c.message or f"expected {c.expected}", 500)})
            fail.text = xml_text(f"expected: {c.expected}\nobserved: {c.observed}\n{c.message}")
        elif c.status == "not_run":
            ET.SubElement(case, "skipped", {"message": xml_text(c.message, 500)})
    if errors:
        err = ET.SubElement(suite, "error", {"message": "harness error (not charged)"})
        err.text = xml_text("\n".join(t.error for t in result.targets if t.error))
    out = ET.SubElement(suite, "system-out")
    out.text = xml_text("\n".join(t.build_output + ("\n" + t.crash if t.crash else "")
                                  for t in result.targets), 20_000)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# ------------------------------------------------------------------------------ Gradescope
def student_gradescope(lab: Lab, result: StudentResult,
                       hidden_visibility: str = "after_published") -> dict | None:
    """Gradescope autograder ``results.json``, from the autograder's own converter
    (:func:`kmodlab.labs.gradescope.gradescope_results`, checked against Gradescope's schema),
    or None for a harness error: it carries no score, so it is never charged."""
    from kmodlab.labs.gradescope import AutograderConfig, gradescope_results

    config = AutograderConfig(lab=lab.id, targets=tuple(t.target for t in result.targets)
                              or ("-",), hidden_visibility=hidden_visibility,
                              lab_id=lab.id, lab_digest=lab.digest, max_score=result.max_score)
    return gradescope_results(lab, result, config, seconds=result.seconds)


def write_student_reports(lab: Lab, result: StudentResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(student_markdown(lab, result))
    (folder / "report.json").write_text(json.dumps(result.to_dict(), indent=2))
    (folder / "junit.xml").write_text(student_junit(lab, result))
    gradescope = student_gradescope(lab, result)
    if gradescope is not None:      # a harness error gets none: never a score of 0
        (folder / "results.json").write_text(json.dumps(gradescope, indent=2))
    else:
        (folder / "results.json").unlink(missing_ok=True)
    return folder


def student_folder(out: Path, student: str) -> Path:
    return out / "students" / slug(student)


# ------------------------------------------------------------------------------ class CSV
def class_csv(lab: Lab, results: Sequence[StudentResult]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [c.name for c in lab.spec.checks]
    writer.writerow(["student", "outcome", "score", "max_score", "percent", *names,
                     "params", "graded_at", "submission"])
    for r in results:
        by_name = {c.name: c for c in r.checks}
        pct = "" if r.score is None or not r.max_score else f"{100 * r.score / r.max_score:.1f}"
        writer.writerow([csv_cell(r.student), r.outcome.value,
                         "" if r.score is None else f"{r.score:g}", f"{r.max_score:g}", pct,
                         *(f"{by_name[n].points:g}" if n in by_name else "" for n in names),
                         csv_cell(" ".join(f"{k}={v}" for k, v in r.params.items())),
                         r.graded_at, r.submission_digest[:12]])
    return buf.getvalue()


def class_summary(lab: Lab, results: Sequence[StudentResult]) -> dict:
    graded = [r for r in results if r.score is not None]
    scores = [r.score for r in graded]
    fails = Counter(c.name for r in graded for c in r.checks if c.status == "failed")
    return {
        "lab": lab.id, "title": lab.title, "students": len(results),
        "outcomes": dict(Counter(r.outcome.value for r in results)),
        "max_score": lab.spec.max_points,
        "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
        "most_failed": fails.most_common(10),
        "harness_errors": [r.student for r in results if r.outcome is Outcome.HARNESS_ERROR],
    }


# ------------------------------------------------------------------------------ class HTML
_COLORS = {"passed": "#2e7d32", "failed": "#ef6c00", "compile_error": "#6a1b9a",
           "crash": "#c62828", "hang": "#1565c0", "harness_error": "#757575"}


def _bar_chart_svg(title: str, items: Sequence[tuple[str, float, str]], width: int = 520,
                   unit: str = "") -> str:
    """Horizontal bars: (label, value, color).  Labels are escaped."""
    row, label_w, pad = 24, 220, 8
    height = pad * 2 + 22 + row * max(1, len(items))
    top = max((v for _, v, _ in items), default=0) or 1
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'role="img" aria-label="{html_text(title)}">'),
             (f'<text x="{pad}" y="{pad + 12}" font-size="14" font-weight="bold">'
              f'{html_text(title)}</text>')]
    for i, (label, value, color) in enumerate(items):
        y = pad + 22 + i * row
        w = int((width - label_w - 60) * value / top)
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(f'<text x="{pad}" y="{y + 15}" font-size="12">{html_text(short)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1)}" height="16" '
                     f'fill="{color}"><title>{html_text(label)}: {value:g}{unit}</title></rect>')
        parts.append(f'<text x="{label_w + max(w, 1) + 6}" y="{y + 15}" font-size="12">'
                     f'{value:g}{unit}</text>')
    if not items:
        parts.append(f'<text x="{pad}" y="{pad + 40}" font-size="12">(none)</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram_svg(scores: Sequence[float], max_score: float, bins: int = 10,
                   width: int = 520, height: int = 220) -> str:
    counts = [0] * bins
    for s in scores:
        idx = min(bins - 1, int(bins * s / max_score)) if max_score else 0
        counts[idx] += 1
    top = max(counts) or 1
    left, bottom, pad = 36, 36, 10
    bw = (width - left - pad) / bins
    top_gap = 34                      # room for the title and the tallest bar's count
    ph = height - bottom - pad - top_gap
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              'role="img" aria-label="score distribution">'),
             (f'<text x="{pad}" y="{pad + 12}" font-size="14" font-weight="bold">'
              'Score distribution</text>')]
    for i, n in enumerate(counts):
        h = ph * n / top
        x = left + i * bw
        y = pad + top_gap + ph - h
        lo, hi = 100 * i / bins, 100 * (i + 1) / bins
        parts.append(f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{bw - 4:.1f}" height="{h:.1f}" '
                     f'fill="#3949ab"><title>{lo:.0f}–{hi:.0f}%: {n} student(s)</title></rect>')
        if n:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{y - 3:.1f}" font-size="11" '
                         f'text-anchor="middle">{n}</text>')
        parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 16}" font-size="10" '
                     f'text-anchor="middle">{lo:.0f}%</text>')
    parts.append(f'<line x1="{left}" y1="{pad + top_gap + ph}" x2="{width - pad}" '
                 f'y2="{pad + top_gap + ph}" stroke="#333"/>')
    parts.append("</svg>")
    return "".join(parts)


def class_html(lab: Lab, results: Sequence[StudentResult]) -> str:
    summary = class_summary(lab, results)
    graded = [r for r in results if r.score is not None]
    max_score = lab.spec.max_points
    outcomes = Counter(r.outcome.value for r in results)
    outcome_items = [(Outcome(o).label, float(outcomes.get(o, 0)), _COLORS[o])
                     for o in _COLORS if outcomes.get(o)]
    fails = Counter(c.name for r in graded for c in r.checks if c.status == "failed")
    fail_items = [(name, float(n), "#c62828") for name, n in fails.most_common(12)]
    rows = []
    for r in sorted(results, key=lambda r: r.student):
        failed = ", ".join(c.name for c in r.checks if c.status == "failed")
        link = f"students/{slug(r.student)}/report.md"
        pct = "" if r.score is None or not max_score else f"{100 * r.score / max_score:.0f}%"
        rows.append(
            f'<tr><td><a href="{html_text(link)}">{html_text(r.student, 200)}</a></td>'
            f'<td><span class="o" style="background:{_COLORS[r.outcome.value]}">'
            f'{html_text(r.outcome.label)}</span></td>'
            f'<td class="n">{"–" if r.score is None else f"{r.score:g}"} / {r.max_score:g}</td>'
            f'<td class="n">{pct}</td><td>{html_text(failed, 500)}</td>'
            f'<td>{html_text(" ".join(f"{k}={v}" for k, v in r.params.items()), 300)}</td></tr>')
    mean = summary["mean_score"]
    harness = summary["harness_errors"]
    harness_note = (f'<p class="warn">{len(harness)} harness error(s), not charged: rerun the '
                    'same <code>kmodlab lab grade</code> command to retry them.</p>'
                    if harness else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html_text(lab.title)}: class report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
td.n {{ text-align: right; white-space: nowrap; }}
.o {{ color: white; border-radius: 3px; padding: 1px 6px; white-space: nowrap; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 2em; }}
.warn {{ background: #fff3e0; padding: .5em; border-left: 4px solid #ef6c00; }}
</style></head><body>
<h1>{html_text(lab.title)}</h1>
<p>Lab <code>{html_text(lab.id)}</code>: {len(results)} submission(s), mean score
{"–" if mean is None else f"{mean:g}"} / {max_score:g}.</p>
{harness_note}
<div class="charts">
{_histogram_svg([r.score for r in graded if r.score is not None], max_score)}
{_bar_chart_svg("Outcomes", outcome_items)}
{_bar_chart_svg("Most failed checks", fail_items)}
</div>
<table><thead><tr><th>Student</th><th>Outcome</th><th>Score</th><th>%</th>
<th>Failed checks</th><th>Parameters</th></tr></thead>
<tbody>
{"".join(rows)}
</tbody></table>
</body></html>
"""


def write_class_reports(lab: Lab, results: Sequence[StudentResult], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "class.csv").write_text(class_csv(lab, results))
    (out / "class.html").write_text(class_html(lab, results))
    (out / "summary.json").write_text(json.dumps(class_summary(lab, results), indent=2))
