"""The result of a cross-check run, for people (tables in ~100 columns) and machines (JSON).

The default text groups rows by family and quantity -- what was compared, how often, under
which kernel rule -- and then lists every failing row in full (predicted, observed, rule,
reason).  ``all_rows=True`` prints every row with rule numbers and a legend.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from kmodlab.check.rows import FAILING, MATCH, WITHIN, CheckRow

WIDTH = 100


@dataclass
class FamilyResult:
    family: str
    rows: list[CheckRow] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[CheckRow]:
        return [r for r in self.rows if r.failed]


@dataclass
class CheckReport:
    arch: str
    series: str
    release: str
    package_version: str
    cpus: int
    model: str
    families: list[FamilyResult] = field(default_factory=list)
    seconds: float = 0.0
    guest_start: float = 0.0
    booted_from: str = ""

    @property
    def rows(self) -> list[CheckRow]:
        return [r for f in self.families for r in f.rows]

    @property
    def failed(self) -> list[CheckRow]:
        return [r for r in self.rows if r.failed]

    @property
    def errors(self) -> list[str]:
        return [f"{f.family}: {e}" for f in self.families for e in f.errors]

    @property
    def exit_code(self) -> int:
        """0: every row passed; 1: some row failed (mismatch, out of bound, not observed);
        2: a family could not be checked at all."""
        if self.errors:
            return 2
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        scored = [r for r in self.rows if not r.informational]
        by = Counter(r.verdict for r in scored)
        return {"checks": len(self.rows), "match": by[MATCH], "within bound": by[WITHIN],
                "failed": sum(by[v] for v in FAILING),
                "informational": len(self.rows) - len(scored), "errors": len(self.errors)}

    def summary(self) -> str:
        c = self.counts()
        text = (f"{c['checks']} checks: {c['match']} match, {c['within bound']} within bound, "
                f"{c['failed']} failed")
        if c["informational"]:
            text += f" ({c['informational']} informational)"
        if c["errors"]:
            text += f"; {c['errors']} error(s)"
        return text


# ----------------------------------------------------------------------------- JSON
def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def report_to_json(report: CheckReport) -> dict[str, Any]:
    """Everything in the report as plain data (``json.dumps`` ready)."""
    return {
        "kernel": {"arch": report.arch, "series": report.series, "release": report.release,
                   "package_version": report.package_version},
        "cpus": report.cpus, "model": report.model, "seconds": round(report.seconds, 2),
        "summary": report.counts(), "exit_code": report.exit_code,
        "families": [{
            "family": f.family, "probes": f.probes, "errors": f.errors,
            "seconds": round(f.seconds, 2),
            "rows": [{k: _plain(v) for k, v in asdict(r).items()} | {"failed": r.failed}
                     for r in f.rows],
        } for f in report.families],
    }


# ----------------------------------------------------------------------------- text
SHORT = {MATCH: "match", WITHIN: "in bound", "mismatch": "MISMATCH", "out of bound": "OUT",
         "not observed": "NOT SEEN"}


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def _verdict(row: CheckRow) -> str:
    return SHORT[row.verdict] + ("*" if row.informational else "")


def _wrap(text: str, width: int) -> list[str]:
    """Greedy wrap that may break after spaces, commas (per-order lists), '/' and ':' (source
    paths), else anywhere."""
    pieces = re.findall(r"[^ ,/:]*[ ,/:]?", text)
    lines, line = [], ""
    for piece in filter(None, pieces):
        while len(piece) > width:
            if line:
                lines.append(line.rstrip())
                line = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len(line) + len(piece.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _table(headers: list[str], widths: list[int], body: list[list[str]],
           right: frozenset[int] = frozenset(), clip: frozenset[int] = frozenset(),
           max_lines: int = 2) -> list[str]:
    """Plain fixed-width columns: predictable in 100 columns, cells wrap onto extra lines
    (the ``clip`` columns onto at most ``max_lines``)."""
    def line(cells: list[str]) -> str:
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
            out.append(cell.rjust(w) if i in right else cell.ljust(w))
        return " ".join(out).rstrip()

    lines = [line(headers), line(["─" * w for w in widths])]
    for cells in body:
        wrapped = [_wrap(c, w) for c, w in zip(cells, widths, strict=True)]
        wrapped = [_clip(w, max_lines) if i in clip else w for i, w in enumerate(wrapped)]
        for k in range(max(len(w) for w in wrapped)):
            lines.append(line([w[k] if k < len(w) else "" for w in wrapped]))
    return lines


def _header(report: CheckReport) -> list[str]:
    start = (f", guest ready in {report.guest_start:.1f} s ({report.booted_from})"
             if report.booted_from and report.booted_from != "warm" else "")
    cpus = f"{report.cpus} CPU{'s' if report.cpus != 1 else ''}"
    kernel = f"{report.arch} {report.release} (Debian {report.package_version})"
    return [f"kmodlab check: {kernel}, {cpus}",
            f"reference model: {report.model}; {report.seconds:.1f} s{start}", ""]


def _rules(rows: list[CheckRow]) -> str:
    """The rule of a group: itself if shared, else the first and how many more (--all lists
    them all)."""
    rules = list(dict.fromkeys(r.rule for r in rows))
    return rules[0] + (f" (+{len(rules) - 1} more)" if len(rules) > 1 else "")


def _clip(lines: list[str], most: int) -> list[str]:
    return lines if len(lines) <= most else lines[:most - 1] + [lines[most - 1][:-1] + "…"]


def _grouped(report: CheckReport, width: int) -> list[str]:
    """One line per family and quantity (or topic): what was compared, how often, how it
    went, under which kernel rule."""
    widths = [10, 24, 4, 16, max(width - 58, 20)]
    body: list[list[str]] = []
    for fam in report.families:
        groups: dict[str, list[CheckRow]] = {}
        for row in fam.rows:
            groups.setdefault(row.topic or row.quantity, []).append(row)
        name = f"{fam.family}"
        for quantity, rows in groups.items():
            verdicts = Counter(_verdict(r) for r in rows)
            text = ", ".join(f"{n} {v}" for v, n in verdicts.most_common())
            body.append([name, quantity, str(len(rows)), text, _rules(rows)])
            name = ""
        for error in fam.errors:
            body.append([name or fam.family, "ERROR", "", "", error.splitlines()[0]])
    return _table(["family", "quantity", "n", "verdicts", "rule (kernel source)"], widths,
                  body, right=frozenset({2}), clip=frozenset({4}))


def _rows(rows: list[CheckRow], width: int) -> list[str]:
    """Every row; the rule column is a number into the legend printed after the table."""
    legend: dict[str, int] = {}
    widths = [10, 25, 22, 12, 12, 4, max(width - 91, 9)]
    body, last = [], None
    for row in rows:
        number = legend.setdefault(row.rule, len(legend) + 1)
        predicted = _show(row.predicted)
        if not row.exact and row.bound is not None:
            predicted = f"{row.bound[0]}..{row.bound[1]}"
        body.append([row.family if row.family != last else "", row.test, row.quantity,
                     predicted, _show(row.observed), f"[{number}]", _verdict(row)])
        last = row.family
    lines = _table(["family", "test", "quantity", "predicted", "observed", "rule", "verdict"],
                   widths, body, right=frozenset({5}))
    lines.append("")
    lines.append("rules:")
    for rule, n in legend.items():
        lines.extend(_wrap(f"[{n}] {rule}", width - 2))
    return lines


def _failures(report: CheckReport, width: int) -> list[str]:
    failed = report.failed
    if not failed:
        return []
    title = (f"FAILED ({len(failed)}): what the model predicted, by which rule, and what the "
             "kernel showed")
    lines = ["", title]
    for row in failed:
        expected = (_show(row.predicted) if row.exact or row.bound is None else
                    f"{row.bound[0]}..{row.bound[1]} (model: {_show(row.predicted)})")
        lines.append(f"  {row.probe} / {row.test}: {row.quantity}: {row.verdict}")
        for label, text in (("predicted", expected), ("observed", _show(row.observed)),
                            ("rule", row.rule), ("why", row.reason)):
            if text:
                wrapped = _wrap(text, width - 16)
                lines.append(f"    {label:<10}  {wrapped[0]}")
                lines.extend(" " * 16 + more for more in wrapped[1:])
    return lines


def render_check(report: CheckReport, *, all_rows: bool = False, width: int = WIDTH) -> str:
    """The report as text: grouped by quantity (default) or every row (``all_rows``), then the
    failures in full and the summary line."""
    lines = [wrapped for line in _header(report) for wrapped in _wrap(line, width)]
    lines += _rows(report.rows, width) if all_rows else _grouped(report, width)
    lines.append("")
    lines.extend(_wrap("verdicts: in bound = within its documented bound, OUT = out of bound, "
                       "NOT SEEN = not observed, * = informational (never fails)", width))
    for error in report.errors:
        lines.append("")
        lines.extend(_wrap(f"ERROR {error}", width))
    lines += _failures(report, width)
    lines.append("")
    lines.append(report.summary())
    return "\n".join(lines) + "\n"
