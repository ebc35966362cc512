"""The report: summary counts, exit codes, the text tables (in 100 columns) and JSON."""

from __future__ import annotations

import json

from kmodlab.check.report import CheckReport, FamilyResult, render_check, report_to_json
from kmodlab.check.rows import Rows

RULE = "mm/slab_common.c:kmalloc_slab() + size_index[] + mm/slab.h:slab_ksize() = s->size"


def report(*families: FamilyResult) -> CheckReport:
    rep = CheckReport("x86_64", "6.1", "6.1.0-56-cloud-amd64", "6.1.192-2", 1,
                      "Model(x86_64 6.1, ncpus=1, kconfig)", seconds=4.2)
    rep.families.extend(families)
    return rep


def kmalloc_family(wrong: bool = False) -> FamilyResult:
    rows = Rows("kmalloc")
    for size, ksize in ((8, 8), (160, 192), (1000, 1024)):
        rows.exact(f"kmalloc_{size}_kernel", "ksize", ksize, ksize + (8 if wrong and size == 160
                                                                        else 0), RULE)
    rows.bounded("kmalloc_8_kernel", "address alignment", 8, 8, 4096, 64, "slab.h", "guarantee")
    rows.bounded("slabinfo kmalloc-64", "Δactive_objs (shrunk)", 8, -55, 71, -72, "slub",
                 "shared cache", informational=True)
    rows.exact("pages", "buddy free lists after alloc", (4, 8, 6, 4, 6, 6, 7, 7, 4, 2, 101),
               (4, 8, 6, 4, 6, 6, 7, 7, 4, 2, 101), "mm/page_alloc.c:__rmqueue_smallest()")
    return FamilyResult("kmalloc", rows.rows, ["kmalloc"], seconds=1.0)


def test_summary_and_exit_codes() -> None:
    ok = report(kmalloc_family())
    assert ok.summary() == "6 checks: 4 match, 1 within bound, 0 failed (1 informational)"
    assert ok.exit_code == 0
    bad = report(kmalloc_family(wrong=True))
    assert bad.counts()["failed"] == 1 and bad.exit_code == 1
    broken = report(kmalloc_family(wrong=True), FamilyResult("pages", errors=["BuildError: x"]))
    assert broken.exit_code == 2 and broken.errors == ["pages: BuildError: x"]


def test_default_text_groups_by_quantity_and_fits_100_columns() -> None:
    text = render_check(report(kmalloc_family()))
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    header = next(line for line in lines if line.startswith("family"))
    assert header.split() == ["family", "quantity", "n", "verdicts", "rule", "(kernel", "source)"]
    ksize = next(line for line in lines if " ksize " in line)
    assert "3 match" in ksize and "kmalloc_slab()" in ksize
    assert "1 OUT*" in text                          # informational rows are marked, never fail
    assert lines[-1] == "6 checks: 4 match, 1 within bound, 0 failed (1 informational)"
    assert "FAILED" not in text


def test_every_row_table_has_the_briefs_columns() -> None:
    text = render_check(report(kmalloc_family()), all_rows=True)
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    header = next(line for line in lines if line.startswith("family"))
    assert header.split() == ["family", "test", "quantity", "predicted", "observed", "rule",
                              "verdict"]
    row = next(line for line in lines if "kmalloc_160_kernel" in line)
    assert row.split()[-4:] == ["192", "192", "[1]", "match"]
    assert any(line.startswith("[1] mm/slab_common.c:kmalloc_slab()") for line in lines)
    assert "4,8,6,4,6,6," in text and "7,7,4,2,101" in text   # per-order lists wrap at commas


def test_failures_show_prediction_rule_and_observation() -> None:
    text = render_check(report(kmalloc_family(wrong=True)))
    assert "FAILED (1)" in text
    block = text[text.index("FAILED (1)"):]
    assert "kmalloc / kmalloc_160_kernel: ksize: mismatch" in block
    assert "predicted   192" in block and "observed    200" in block
    assert "slab_ksize()" in block
    assert text.splitlines()[-1].endswith("1 failed (1 informational)")


def test_errors_are_shown() -> None:
    text = render_check(report(FamilyResult("pages", errors=["GuestError: boom\nmore"])))
    assert "ERROR pages: GuestError: boom" in text and "1 error(s)" in text


def test_json_is_complete_and_serialisable() -> None:
    data = report_to_json(report(kmalloc_family(wrong=True)))
    text = json.dumps(data)
    assert json.loads(text)["summary"]["failed"] == 1
    assert data["exit_code"] == 1 and data["kernel"]["release"] == "6.1.0-56-cloud-amd64"
    rows = data["families"][0]["rows"]
    assert {"family", "test", "quantity", "predicted", "observed", "rule", "exact", "bound",
            "verdict", "failed"} <= set(rows[0])
    buddy = next(r for r in rows if r["quantity"] == "buddy free lists after alloc")
    assert buddy["predicted"] == [4, 8, 6, 4, 6, 6, 7, 7, 4, 2, 101]
