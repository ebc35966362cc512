"""KTAP v1 parser (Documentation/dev-tools/ktap.rst), incl. text taken from dmesg."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.observe import parse_ktap
from kmodlab.observe.ktap import KtapError, convert_value, parse_values

KTAP = Path(__file__).resolve().parent.parent / "fixtures" / "ktap"


def test_values() -> None:
    assert parse_values("kmalloc_160: ksize=192 cache=kmalloc-192") == (
        "kmalloc_160", {"ksize": 192, "cache": "kmalloc-192"})
    assert parse_values("freed=5 mask=0x1f delta=-16") == (None, {"freed": 5, "mask": 31,
                                                                  "delta": -16})
    assert parse_values("test_1: initializing test_1") == ("test_1", None)
    assert parse_values("a=1 and prose") == (None, None)
    assert parse_values("") == (None, None)
    assert convert_value("0xFF") == 255 and convert_value("1.5") == "1.5"


def test_kunit_output_from_dmesg() -> None:
    (doc,) = parse_ktap((KTAP / "kunit-dmesg.txt").read_text())
    assert doc.version == "KTAP version 1" and doc.plan == 2 and not doc.errors
    kmalloc, vmalloc = doc.results
    assert kmalloc.name == "kmalloc" and kmalloc.status == "pass"
    sub = kmalloc.subtest
    assert sub is not None and sub.name == "kmalloc" and sub.plan == 3
    assert [r.status for r in sub.results] == ["pass", "pass", "skip"]
    assert sub.results[0].values == {"ksize": 192, "cache": "kmalloc-192"}
    assert sub.results[0].values_by_name == {"kmalloc_160": {"ksize": 192, "cache": "kmalloc-192"}}
    assert sub.results[1].values["addr"] == 0xffff8880
    assert sub.results[2].reason == "no ZONE_DMA"
    # KUnit's "# module: ..." line comes before the plan: a header of the subtest document,
    # as KUnit's own kunit_parser.py reads it; every later diagnostic attaches forwards.
    assert [d.text for d in sub.diagnostics] == ["module: kmodlab_probe"]
    assert [d.text for d in kmalloc.diagnostics] == ["kmalloc: pass:2 fail:0 skip:1 total:3"]
    assert vmalloc.status == "fail" and vmalloc.subtest is not None
    assert vmalloc.subtest.results[0].values == {"size": 16384, "pages": 3}
    assert vmalloc.subtest.results[1].diagnostics[0].text == "test_2: FAIL expected 2 entries"
    assert not doc.ok
    paths = [p for p, _ in doc.walk()]
    assert paths[:4] == [("kmalloc", "kmalloc_160"), ("kmalloc", "kmalloc_large"),
                         ("kmalloc", "kmalloc_dma"), ("kmalloc",)]
    assert doc.find("vmalloc_3m").status == "fail"


def test_load_and_unload_documents() -> None:
    load, unload = parse_ktap((KTAP / "load-unload.txt").read_text())
    assert load.ok and unload.ok
    assert load.find("alloc").values == {"n": 5, "cache": "ap_plain100", "objsize": 104,
                                         "objperslab": 39}
    assert load.find("constants").values["mask"] == 0x1f
    assert unload.results[0].values == {"freed": 5}
    assert [d.text for d in unload.diagnostics] == ["unload done"]   # after the last result


def test_plan_and_numbering_errors_are_reported() -> None:
    (doc,) = parse_ktap((KTAP / "bad-plan.txt").read_text())
    messages = [i.message for i in doc.errors]
    assert "test number 3 out of sequence (expected 2)" in messages
    assert "plan 1..3 but 2 result line(s)" in messages
    assert not doc.ok
    with pytest.raises(KtapError) as err:
        parse_ktap((KTAP / "bad-plan.txt").read_text(), strict=True)
    assert err.value.line_no == 4


def test_spec_example() -> None:
    (doc,) = parse_ktap((KTAP / "spec-nested.txt").read_text())
    assert not doc.all_errors()
    main = doc.results[0]
    assert main.name == "main_test" and main.status == "fail" and main.subtest is not None
    names = [r.name for r in main.subtest.results]
    assert names == ["example_test_1", "example_test_2", "example_test_3"]
    t1 = main.subtest.results[0].subtest
    assert t1 is not None and t1.results[0].diagnostics[0].name == "test_1"
    t3 = main.subtest.results[2].subtest
    assert t3 is not None and [r.status for r in t3.results] == ["pass", "fail", "skip"]


def test_truncated_output_flags_missing_results() -> None:
    (doc,) = parse_ktap((KTAP / "truncated.txt").read_text())
    messages = [i.message for i in doc.all_errors()]
    assert "subtest crashy has no result line" in messages
    assert "plan 1..2 but 1 result line(s)" in messages        # the nested plan
    assert "plan 1..2 but 0 result line(s)" in messages        # the top plan
    assert doc.results[0].status == "missing" and not doc.ok


def test_directives_and_prefix() -> None:
    text = """ap: KTAP version 1
ap: 1..5
ap: ok 1 a # SKIP not here
ap: not ok 2 b # TODO later
ap: not ok 3 c # TIMEOUT 30 seconds
ap: ok 4 - d # rcode=0
ap: not ok 5 e # xfail known
"""
    (doc,) = parse_ktap(text, prefix="ap: ")
    assert [r.status for r in doc.results] == ["skip", "todo", "timeout", "pass", "xfail"]
    assert doc.results[3].name == "d" and doc.results[3].values == {"rcode": 0}
    assert [r.passed for r in doc.results] == [True, True, False, True, True]


def test_old_kunit_subtest_header_without_version_line() -> None:
    text = "TAP version 14\n1..1\n    # Subtest: suite\n    1..1\n    ok 1 case\nok 1 suite\n"
    (doc,) = parse_ktap(text)
    sub = doc.results[0].subtest
    assert sub is not None and sub.name == "suite" and sub.results[0].name == "case"
    assert not doc.all_errors()


def test_bail_out_and_missing_plan() -> None:
    (doc,) = parse_ktap("KTAP version 1\n1..2\nok 1 a\nBail out! out of memory\n")
    assert doc.bail_out == "out of memory" and not doc.ok
    (doc2,) = parse_ktap("KTAP version 1\nok 1 a\n")
    assert doc2.ok and [w.message for w in doc2.warnings] == ["no plan line"]


def test_lines_outside_documents_are_ignored() -> None:
    assert parse_ktap("ok 1 stray\n1..1\n# note\n") == []
    (doc,) = parse_ktap("noise\nKTAP version 1\n1..1\nrandom: crng init done\nok 1 a\n")
    assert doc.ok and len(doc.results) == 1


def test_subtest_without_result_before_sibling() -> None:
    text = ("KTAP version 1\n1..2\n  KTAP version 1\n  1..1\n  ok 1 x\n"
            "  KTAP version 1\n  1..1\n  ok 1 y\nok 1 second\n")
    (doc,) = parse_ktap(text)
    messages = [i.message for i in doc.all_errors()]
    assert any("has no result line" in m for m in messages)


def test_diagnostics_before_the_plan_belong_to_the_document() -> None:
    text = ("KTAP version 1\n# kmodlab: module=kml_x family=x phase=load\n1..1\n"
            "# t1: ksize=192\nok 1 t1\n")
    (doc,) = parse_ktap(text)
    assert doc.header == {"module": "kml_x", "family": "x", "phase": "load"}
    assert doc.results[0].values == {"ksize": 192}
