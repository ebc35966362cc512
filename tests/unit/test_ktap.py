"""KTAP v1 parser (Documentation/dev-tools/ktap.rst), incl. text taken from dmesg."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kmodlab.observe import parse_ktap
from kmodlab.observe.ktap import KtapCounts, KtapError, convert_value, ktap_verdict, parse_values

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


@pytest.mark.fault("ktap")
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


@pytest.mark.fault("ktap")
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


@pytest.mark.fault("ktap")
def test_bail_out_and_missing_plan() -> None:
    (doc,) = parse_ktap("KTAP version 1\n1..2\nok 1 a\nBail out! out of memory\n")
    assert doc.bail_out == "out of memory" and not doc.ok
    (doc2,) = parse_ktap("KTAP version 1\nok 1 a\n")
    assert doc2.ok and [w.message for w in doc2.warnings] == ["no plan line"]


def test_lines_outside_documents_are_ignored() -> None:
    assert parse_ktap("ok 1 stray\n1..1\n# note\n") == []
    (doc,) = parse_ktap("noise\nKTAP version 1\n1..1\nrandom: crng init done\nok 1 a\n")
    assert doc.ok and len(doc.results) == 1


@pytest.mark.fault("ktap")
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


# -- verdicts like kunit_tool's (tools/testing/kunit/kunit_parser.py)

KUNIT_TOOL = KTAP / "kunit_tool"

# kunit_tool's verdict on each of its own logs (see kunit_tool/PROVENANCE.md): the status and
# counts kunit_tool_test.py asserts at c17ee635 and, for the counts it does not assert, what that
# kunit_parser.parse_run_tests() returns: (status, passed, failed, skipped, crashed, errors).
KUNIT_TOOL_VERDICTS = {
    "test_is_test_passed-all_passed.log": ("SUCCESS", 10, 0, 0, 0, 0),        # errors == 0
    "test_is_test_passed-all_passed_nested.log": ("SUCCESS", 7, 0, 0, 0, 0),  # errors == 0
    "test_is_test_passed-kselftest.log": ("SUCCESS", 2, 0, 0, 0, 0),          # errors == 0
    "test_is_test_passed-failure.log": ("FAILURE", 9, 1, 0, 0, 0),            # errors == 0
    "test_is_test_passed-failure-nested.log": ("FAILURE", 1, 2, 0, 0, 0),     # failed == 2
    "test_is_test_passed-missing_plan.log": ("SUCCESS", 10, 0, 0, 0, 0),      # passed=10 err=0
    "test_is_test_passed-no_tests_no_plan.log": ("SUCCESS", 1, 0, 0, 0, 1),   # passed=1 err=1
    "test_is_test_passed-no_tests_run_with_header.log": ("NO_TESTS", 0, 0, 0, 0, 1),
    "test_is_test_passed-no_tests_run_no_header.log":
        ("FAILURE_TO_PARSE_TESTS", 0, 0, 0, 0, 1),                             # errors == 1
    "test_skip_tests.log": ("SUCCESS", 4, 0, 1, 0, 0),                        # passed=4 skip=1
    "test_skip_all_tests.log": ("SKIPPED", 0, 0, 5, 0, 0),                    # skipped=5
    "test_strip_hyphen.log": ("SUCCESS", 2, 0, 0, 0, 0),
    "test_config_printk_time.log": ("SUCCESS", 10, 0, 0, 0, 0),               # errors == 0
    "test_multiple_prefixes.log": ("SUCCESS", 10, 0, 0, 0, 0),                # errors == 0
    "test_interrupted_tap_output.log": ("SUCCESS", 10, 0, 0, 0, 0),           # errors == 0
    "test_pound_sign.log": ("SUCCESS", 10, 0, 0, 0, 0),                       # errors == 0
    "test_pound_no_prefix.log": ("SUCCESS", 10, 0, 0, 0, 0),                  # errors == 0
    "test_kernel_panic_interrupt.log": ("TEST_CRASHED", 8, 0, 0, 2, 3),       # errors >= 1
    "test_parse_attributes.log": ("SUCCESS", 1, 0, 0, 0, 0),                  # passed=1 err=0
    "test_parse_subtest_header.log": ("SUCCESS", 1, 0, 0, 0, 0),
    "test_output_isolated_correctly.log": ("SUCCESS", 2, 0, 0, 0, 0),
    # Deleted upstream in 5.19 with kunit_tool's crash-message check; kunit_tool_test.py asserted
    # TEST_CRASHED for it until then.  Today's kunit_tool says FAILURE (9 passed, 1 failed).
    "test_is_test_passed-crash.log": ("TEST_CRASHED", 9, 0, 0, 1, 0),
}


def _verdict_of(name: str) -> tuple[str, int, int, int, int, int]:
    v = ktap_verdict(parse_ktap((KUNIT_TOOL / name).read_text()))
    return (v.status, v.passed, v.failed, v.skipped, v.crashed, v.errors)


def test_every_kunit_tool_fixture_has_a_verdict_and_provenance() -> None:
    logs = {p.name for p in KUNIT_TOOL.glob("*.log")}
    assert logs == set(KUNIT_TOOL_VERDICTS)
    provenance = (KUNIT_TOOL / "PROVENANCE.md").read_text()
    assert all(f"`{name}`" in provenance for name in logs)


@pytest.mark.parametrize("name", sorted(KUNIT_TOOL_VERDICTS))
@pytest.mark.fault("ktap")
def test_verdict_equals_kunit_tools(name: str) -> None:
    assert _verdict_of(name) == KUNIT_TOOL_VERDICTS[name]
    v = ktap_verdict(parse_ktap((KUNIT_TOOL / name).read_text()))
    assert v.ok == (v.status in ("SUCCESS", "SKIPPED") and v.errors == 0)


def test_kunit_tool_logs_details() -> None:
    """The other things kunit_tool_test.py asserts about these logs."""
    (doc,) = parse_ktap((KUNIT_TOOL / "test_is_test_passed-failure-nested.log").read_text())
    sub1, sub2 = doc.results
    assert [sub1.status, sub2.status] == ["fail", "fail"]
    assert sub1.subtest is not None and sub1.subtest.results[0].status == "pass"
    assert sub2.subtest is not None and sub2.subtest.results[0].status == "fail"
    assert not doc.all_errors()           # results indented below their header: no error

    (doc,) = parse_ktap((KUNIT_TOOL / "test_strip_hyphen.log").read_text())
    assert [r.name for r in doc.results] == ["sysctl_test", "example"]

    for name in ("test_config_printk_time.log", "test_multiple_prefixes.log",
                 "test_interrupted_tap_output.log", "test_pound_sign.log",
                 "test_pound_no_prefix.log", "test_kernel_panic_interrupt.log"):
        (doc,) = parse_ktap((KUNIT_TOOL / name).read_text())
        assert doc.results[0].name == "kunit-resource-test", name

    (doc,) = parse_ktap((KUNIT_TOOL / "test_is_test_passed-no_tests_no_plan.log").read_text())
    case = doc.find("case")
    assert case.subtest is not None and not case.subtest.results
    assert case.subtest.status == "NO_TESTS"
    assert [i.message for i in case.subtest.errors] == ["no tests run"]

    (doc,) = parse_ktap((KUNIT_TOOL / "test_parse_attributes.log").read_text())
    suite = doc.results[0]
    assert suite.subtest is not None and suite.subtest.name == "suite"
    assert [d.text for d in suite.subtest.diagnostics] == ["module: example"]
    assert [d.text for d in suite.subtest.results[0].diagnostics] == ["test.speed: slow"]

    (doc,) = parse_ktap((KUNIT_TOOL / "test_parse_subtest_header.log").read_text())
    assert doc.results[0].subtest is not None and doc.results[0].subtest.plan == 1

    (doc,) = parse_ktap((KUNIT_TOOL / "test_output_isolated_correctly.log").read_text())
    assert [p for p, _ in doc.walk()] == [("example", "example_simple_test"),
                                          ("example", "example_mock_test"), ("example",)]

    (doc,) = parse_ktap((KUNIT_TOOL / "test_kernel_panic_interrupt.log").read_text())
    stream = doc.results[2]
    assert stream.name == "string-stream-test" and stream.status == "missing" and stream.crashed
    assert stream.subtest is not None and stream.subtest.counts.crashed == 2


# kunit_tool_test.py's inline logs (their lines carry the test's two-tab indentation)
INLINE = {
    # test_parse_late_test_plan: "Missing test results after test plan should alert a
    # suspected test crash", counts passed=1 errors=2, status SUCCESS
    "late_plan": ("\n\t\tTAP version 13\n\t\tok 4 test4\n\t\t1..4\n\t\t",
                  ("SUCCESS", 1, 0, 0, 0, 2)),
    # test_summarize_failures: FAILURE
    "summarize_failures": (
        ("\n\t\tKTAP version 1\n\t\t1..2\n\t\t\t# Subtest: all_failed_suite\n\t\t\t1..2\n"
         "\t\t\tnot ok 1 - test1\n\t\t\tnot ok 2 - test2\n\t\tnot ok 1 - all_failed_suite\n"
         "\t\t\t# Subtest: some_failed_suite\n\t\t\t1..2\n\t\t\tok 1 - test1\n"
         "\t\t\tnot ok 2 - test2\n\t\tnot ok 1 - some_failed_suite\n\t\t"),
        ("FAILURE", 1, 3, 0, 0, 1)),
    # test_show_test_output_on_failure: FAILURE
    "show_output_on_failure": (("\n\t\tKTAP version 1\n\t\t1..1\n\t\t  Test output.\n"
                                "\t\t    Indented more.\n\t\tnot ok 1 test1\n\t\t"),
                               ("FAILURE", 0, 1, 0, 0, 0)),
    # test_exec_no_tests: "0 tests run!", kunit.py exits 1
    "exec_no_tests": ("TAP version 14\n1..0", ("NO_TESTS", 0, 0, 0, 0, 1)),
    # test_is_test_passed-no_tests_no_plan.log as stored at de4fb176: the empty subtest is
    # reported SKIP, which kunit_tool keeps (SKIPPED, no error)
    "no_tests_no_plan_skip": (("TAP version 14\n1..1\n  # Subtest: suite\n  1..1\n"
                               "    # Subtest: case\n  ok 1 - case # SKIP\nok 1 - suite\n"),
                              ("SKIPPED", 0, 0, 1, 0, 0)),
}


@pytest.mark.parametrize("name", sorted(INLINE))
@pytest.mark.fault("ktap")
def test_kunit_tool_inline_logs(name: str) -> None:
    text, expected = INLINE[name]
    v = ktap_verdict(parse_ktap(text))
    assert (v.status, v.passed, v.failed, v.skipped, v.crashed, v.errors) == expected


@pytest.mark.fault("ktap")
def test_zero_tests_is_an_error() -> None:
    (doc,) = parse_ktap("KTAP version 1\n1..0\n")
    assert [i.message for i in doc.errors] == ["no tests run"]
    assert doc.status == "NO_TESTS" and not doc.ok
    (doc,) = parse_ktap("KTAP version 1\n# kmodlab: module=kml_x phase=unload\n")
    assert [i.message for i in doc.errors] == ["no tests run"] and not doc.ok
    with pytest.raises(KtapError, match="no tests run"):
        parse_ktap("KTAP version 1\n1..0\n", strict=True)


@pytest.mark.fault("ktap")
def test_subtest_without_results_is_an_error() -> None:
    text = ("KTAP version 1\n1..2\n    KTAP version 1\n    # Subtest: empty\n    1..0\n"
            "ok 1 empty\n    KTAP version 1\n    # Subtest: full\n    1..1\n    ok 1 x\n"
            "ok 2 full\n")
    (doc,) = parse_ktap(text)
    empty = doc.results[0].subtest
    assert empty is not None and [i.message for i in empty.errors] == ["no tests run"]
    assert not doc.ok and doc.counts == KtapCounts(passed=1, errors=1)
    # reported as skipped (or failed) by its own result line: that line is the verdict
    (doc,) = parse_ktap(text.replace("ok 1 empty", "ok 1 empty # SKIP no device"))
    assert doc.ok and doc.counts == KtapCounts(passed=1, skipped=1)


@pytest.mark.fault("ktap")
def test_crashed_tests_are_counted() -> None:
    text = ("KTAP version 1\n1..1\n    KTAP version 1\n    # Subtest: s\n    1..3\n"
            "    # a: try faulted: last line seen lib/x.c:12\n    not ok 1 a\n"
            "    # b: kunit test case crashed!\n    not ok 2 b\n"
            "    # c: not a crash: try faulted elsewhere is prose\n    ok 3 c\nnot ok 1 s\n")
    (doc,) = parse_ktap(text)
    a, b, c = doc.results[0].subtest.results  # type: ignore[union-attr]
    assert a.crashed and b.crashed and not c.crashed
    assert a.status == "fail" and not a.passed          # the line-level status is unchanged
    assert doc.counts == KtapCounts(passed=1, crashed=2) and doc.status == "TEST_CRASHED"
    v = ktap_verdict([doc])
    assert not v.ok and v.crashed == 2 and v.reason.startswith("TEST_CRASHED: 3 test(s)")
    assert "first crashed: s/a (line 7)" in v.reason
    # a suite cut off by a crash: the planned tests that never came are crashed
    (doc,) = parse_ktap((KTAP / "truncated.txt").read_text())
    assert doc.counts.crashed == 2 and doc.status == "TEST_CRASHED"


@pytest.mark.fault("ktap")
def test_ktap_verdict_without_documents() -> None:
    v = ktap_verdict([])
    assert not v.ok and v.status == "FAILURE_TO_PARSE_TESTS" and v.errors == 1
    assert "no KTAP document" in v.reason and str(v) == v.reason
    assert ktap_verdict([], expect=False).ok
    v = ktap_verdict(parse_ktap("random: crng init done\n"))
    assert not v.ok and v.documents == 0


def test_ktap_verdict_sums_documents() -> None:
    docs = parse_ktap((KTAP / "load-unload.txt").read_text())
    v = ktap_verdict(docs)
    assert v.ok and (v.status, v.passed, v.documents) == ("SUCCESS", 3, 2)
    assert v.reason == "SUCCESS: 3 test(s): 3 passed in 2 documents"
    v = ktap_verdict(parse_ktap((KTAP / "kunit-dmesg.txt").read_text()))
    assert (v.status, v.passed, v.failed, v.skipped) == ("FAILURE", 3, 1, 1)
    assert "first failed: vmalloc/vmalloc_3m (line 21)" in v.reason
    # an empty unload document spoils an otherwise passing log
    v = ktap_verdict(parse_ktap("KTAP version 1\n1..1\nok 1 a\nKTAP version 1\n1..0\n"))
    assert not v.ok and v.status == "SUCCESS" and v.errors == 1
    assert "first error: line 4: no tests run" in v.reason


def test_todo_and_xfail_count_as_passed() -> None:
    (doc,) = parse_ktap("KTAP version 1\n1..3\nnot ok 1 a # TODO later\nnot ok 2 b # XFAIL\n"
                        "ok 3 c # TIMEOUT 30s\n")
    assert doc.counts == KtapCounts(passed=2, failed=1) and not doc.ok


def _lines_executed(text: str) -> int:
    """Python lines run to parse ``text`` and judge it: a deterministic measure of work (a timed
    assertion would flake on a loaded machine; the seconds are benchmarks/ktap_bench.py's)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        docs = parse_ktap(text)
        ktap_verdict(docs)
        [doc.ok for doc in docs]
    finally:
        sys.settrace(None)
    return count


def _flat(n: int) -> str:
    return f"KTAP version 1\n1..{n}\n" + "".join(
        f"# t{i}: size={i}\nok {i} t{i}\n" for i in range(1, n + 1))


@pytest.mark.fault("ktap")
def test_parsing_is_linear() -> None:
    """8x the results must cost about 8x the time, not 64x (the parser once rebuilt its list of
    results for every result line)."""
    small, large = _lines_executed(_flat(500)), _lines_executed(_flat(4000))
    assert large / small < 9, (small, large)


@pytest.mark.fault("ktap")
def test_deep_nesting_needs_no_recursion() -> None:
    depth = 1500                                     # well past Python's recursion limit
    lines = ["KTAP version 1", "1..1"]
    lines += [" " * d + "KTAP version 1\n" + " " * d + "1..1" for d in range(1, depth + 1)]
    lines.append(" " * depth + "ok 1 leaf")
    lines += [" " * (d - 1) + f"ok 1 level{d}" for d in range(depth, 0, -1)]
    (doc,) = parse_ktap("\n".join(lines) + "\n")
    paths = [p for p, _ in doc.walk()]
    assert len(paths) == depth + 1 and paths[-1] == ("level1",) and len(paths[0]) == depth + 1
    assert doc.ok and doc.counts == KtapCounts(passed=1) and not doc.all_errors()
    assert doc.find("leaf").status == "pass" and ktap_verdict([doc]).ok
