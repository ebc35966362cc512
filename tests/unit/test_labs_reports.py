"""Reports escape student-controlled text in every format."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

from kmodlab.labs.escape import csv_cell, md_block, md_code, md_inline, slug
from kmodlab.labs.lab import load_lab
from kmodlab.labs.reports import (
    class_csv,
    class_html,
    student_gradescope,
    student_junit,
    student_markdown,
)
from kmodlab.labs.results import (
    CheckResult,
    Outcome,
    StudentResult,
    TargetResult,
    merge_checks,
    worst,
)

LAB = load_lab("kmalloc_waste")
EVIL = "<script>alert(1)</script> **bold** [x](http://evil) ``` | \x1b[31mred\x00 ]]> &amp;"


def result(student: str = EVIL, outcome: Outcome = Outcome.FAILED, score: float | None = 3.0):
    checks = [CheckResult("objects allocated", "ktap", 1, 1, "passed"),
              CheckResult("ksize matches the reference model", "model", 2, 0, "failed",
                          expected="192", observed=EVIL, message=EVIL),
              CheckResult("kernel stays clean", "no_crash", 1, 0, "failed", hidden=True,
                          observed="oops:\n" + EVIL)]
    target = TargetResult("x86_64:6.1", outcome, checks, build_output=EVIL, crash=EVIL,
                          notes=[EVIL])
    return StudentResult(student, LAB.id, LAB.digest, "abc", outcome, score, 4, checks,
                         [target], {"size": 100}, notes=[EVIL], graded_at="2025-01-01")


def outside_fences(markdown: str) -> str:
    """The Markdown text that is not inside a fenced code block (CommonMark fences)."""
    out, fence = [], None
    for line in markdown.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence = stripped[:len(stripped) - len(stripped.lstrip("`"))]
        elif fence is not None and stripped == fence:
            fence = None
        elif fence is None:
            out.append(line)
    return "\n".join(out)


def test_markdown_escapes_and_fences() -> None:
    text = student_markdown(LAB, result())
    assert "<script>" not in outside_fences(text)
    assert "\\<script\\>" in text
    assert "\x1b" not in text and "\x00" not in text
    # A fence longer than any backtick run inside, so the block cannot be closed early.
    assert "````text" in text


def test_markdown_hides_hidden_checks_for_students() -> None:
    assert "kernel stays clean" not in student_markdown(LAB, result(), show_hidden=False)


def test_junit_is_valid_xml() -> None:
    root = ET.fromstring(student_junit(LAB, result()))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "2"
    assert EVIL.replace("\x00", "").replace("\x1b[31m", "")[:20] in suite.get("name")


def test_gradescope_results() -> None:
    data = student_gradescope(LAB, result())
    assert data is not None and data["score"] == 3.0
    from kmodlab.labs.gradescope import validate_results

    validate_results(data)          # Gradescope's schema: no top-level max_score
    tests = {t["name"]: t for t in data["tests"]}
    assert tests["kernel stays clean"]["visibility"] == "after_published"
    assert tests["objects allocated"]["visibility"] == "visible"
    assert {"name", "score", "max_score", "output", "visibility"} <= set(tests["objects allocated"])
    json.dumps(data)


def test_harness_errors_are_never_charged() -> None:
    r = result(outcome=Outcome.HARNESS_ERROR, score=None)
    assert student_gradescope(LAB, r) is None       # no results.json: never a score
    assert "not charged" in student_markdown(LAB, r)


def test_html_escapes_everything() -> None:
    page = class_html(LAB, [result(), result("bob", Outcome.PASSED, 4.0)])
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<svg" in page and "Score distribution" in page and "Most failed checks" in page
    ET.fromstring(page[page.index("<svg"):page.index("</svg>") + 6])   # the SVG is well formed


def test_csv_defuses_formulas() -> None:
    rows = list(csv.reader(io.StringIO(class_csv(LAB, [result("=cmd|' /C calc'!A0")]))))
    assert rows[0][:5] == ["student", "outcome", "score", "max_score", "percent"]
    assert rows[1][0].startswith("'=")
    assert csv_cell("-3") == "-3" and csv_cell("@x") == "'@x"


def test_escape_helpers() -> None:
    assert md_inline("a|b*c") == "a\\|b\\*c"
    assert md_inline("x86_64:6.1 (ok)") == "x86\\_64:6.1 (ok)"
    assert md_code("a`b") == "``a`b``" and md_code("obj_size") == "`obj_size`"
    assert md_block("x ```` y").startswith("`````")
    assert slug("alice") == "alice"
    assert slug("../../etc") != "../../etc" and "/" not in slug("../../etc")
    assert slug("a b") != slug("a_b")


def test_merge_and_worst() -> None:
    a = TargetResult("x86_64:6.1", Outcome.PASSED, [CheckResult("c", "ktap", 1, 1, "passed")])
    b = TargetResult("arm64:6.12", Outcome.FAILED,
                     [CheckResult("c", "ktap", 1, 0, "failed", message="m")])
    merged = merge_checks([a, b])
    assert merged[0].points == 0 and merged[0].message == "[arm64:6.12] m"
    assert worst([Outcome.PASSED, Outcome.CRASH, Outcome.FAILED]) is Outcome.CRASH
    assert worst([Outcome.HANG, Outcome.HARNESS_ERROR]) is Outcome.HARNESS_ERROR
    again = StudentResult.from_dict(json.loads(json.dumps(result().to_dict())))
    assert again.to_dict() == result().to_dict()
