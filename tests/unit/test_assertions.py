"""kmodlab.assertions: what passes is unchanged; what fails says which part failed.

Phases are built from real captures (tests/fixtures/proc, tests/fixtures/dmesg, tests/fixtures/ktap)
run through the real parsers, as :class:`kmodlab.runner.LoadedModule` builds them in a guest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kmodlab.assertions import (
    KernelAssertionError,
    assert_clean_unload,
    assert_ktap_passed,
    assert_matches,
    assert_no_kernel_complaints,
    assert_slab_growth,
    slab_table,
)
from kmodlab.channel.protocol import CommandResult
from kmodlab.model.prediction import bounded, exact
from kmodlab.observe import (
    SlabInfo,
    find_events,
    parse_buddyinfo,
    parse_ktap,
    parse_meminfo,
    parse_slabinfo,
    parse_vmallocinfo,
)
from kmodlab.runner import Phase, ProcSnapshot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROC = FIXTURES / "proc" / "x86_64-6.1"
DMESG = FIXTURES / "dmesg"
KTAP = FIXTURES / "ktap"

LOAD = "insmod '/tmp/kmodlab/ap.ko' 'n=5'"
UNLOAD = "rmmod 'ap'"
MODULE_AREA = ("0x00000000deadbeef-0x00000000cafebabe   12288 ap_init+0x1e/0x1000 [ap] "
               "pages=2 vmalloc N0=2\n")


def _snapshot(vmalloc_extra: str = "") -> ProcSnapshot:
    def read(kind: str) -> str:
        return (PROC / f"{kind}.txt").read_text()

    return ProcSnapshot(parse_slabinfo(read("slabinfo")), parse_buddyinfo(read("buddyinfo")),
                        parse_vmallocinfo(read("vmallocinfo") + vmalloc_extra),
                        parse_meminfo(read("meminfo")))


BASE = _snapshot()


def _with_caches(snapshot: ProcSnapshot, *changes: tuple[str, dict[str, int] | None]
                 ) -> ProcSnapshot:
    """A copy with caches changed (``{field: value}``), created (a name not listed: based on
    kmalloc-128's geometry) or removed (``None``)."""
    caches = dict(snapshot.slabinfo.caches)
    for name, fields in changes:
        if fields is None:
            caches.pop(name)
            continue
        base = caches.get(name) or dataclasses.replace(caches["kmalloc-128"], name=name,
                                                       active_objs=0, num_objs=0,
                                                       active_slabs=0, num_slabs=0)
        caches = {name: dataclasses.replace(base, **fields),
                  **{n: c for n, c in caches.items() if n != name}}
    return dataclasses.replace(snapshot, slabinfo=SlabInfo(caches))


def _phase(name: str = "load", log: str = "", *, command: str | None = None, exit_status: int = 0,
           output: str = "", before: ProcSnapshot = BASE, after: ProcSnapshot = BASE,
           **extra: object) -> Phase:
    command = command or (LOAD if name == "load" else UNLOAD)
    result = CommandResult(command, exit_status, output.encode(), b"", 0.05)
    return Phase(name=name, command=result, log=log, ktap=parse_ktap(log),
                 events=find_events(log), before=before, after=after, seconds=0.05, **extra)


def _message(excinfo: pytest.ExceptionInfo[BaseException]) -> tuple[str, str]:
    """(first line, whole message) of a KernelAssertionError."""
    text = str(excinfo.value)
    return text.splitlines()[0], text


def _ktap(*lines: str, start: float = 5.0) -> str:
    """Lines as a module prints them into dmesg."""
    return "".join(f"<6>[{start + i / 1e6:12.6f}] {line}\n" for i, line in enumerate(lines))


# --------------------------------------------------------------------------- KTAP

def test_passing_ktap_documents_pass() -> None:
    assert_ktap_passed(_phase(log=(KTAP / "load-unload.txt").read_text()))


def test_a_failed_test_point_is_named_with_its_diagnostics() -> None:
    log = _ktap("KTAP version 1", "# kmodlab: module=ap family=kmalloc phase=load", "1..3",
                "# kmalloc_8_kernel: requested=8 ksize=8", "ok 1 kmalloc_8_kernel",
                "# kmalloc_160_kernel: requested=160 ksize=0 ptr=0",
                "not ok 2 kmalloc_160_kernel",
                "ok 3 kmalloc_dma # SKIP no ZONE_DMA")
    with pytest.raises(KernelAssertionError) as exc:
        assert_ktap_passed(_phase(log=log))
    first, text = _message(exc)
    assert first == "phase load: 1 KTAP test point failed: kmalloc_160_kernel"
    assert "  FAIL kmalloc_160_kernel (test 2)" in text
    assert "      # kmalloc_160_kernel: requested=160 ksize=0 ptr=0" in text
    # the passing and skipped points are in the table, not among the failures
    assert "requested=8 ksize=8" not in text
    assert "  pass    kmalloc_8_kernel" in text and "  skip    kmalloc_dma" in text
    assert LOAD in text


def test_nested_failures_are_named_by_their_path() -> None:
    with pytest.raises(KernelAssertionError) as exc:
        assert_ktap_passed(_phase(log=(KTAP / "kunit-dmesg.txt").read_text()))
    first, text = _message(exc)
    assert first == "phase load: 2 KTAP test points failed: vmalloc/vmalloc_3m, vmalloc"
    assert "  FAIL vmalloc/vmalloc_3m (test 2)" in text
    assert "# test_2: FAIL expected 2 entries" in text
    assert "# vmalloc: pass:1 fail:1 skip:0 total:2" in text
    assert "kmalloc/kmalloc_160" not in text.split("every test point")[0]


def test_ktap_format_errors_are_named_with_their_line() -> None:
    with pytest.raises(KernelAssertionError) as exc:
        assert_ktap_passed(_phase("unload", (KTAP / "bad-plan.txt").read_text()))
    first, text = _message(exc)
    assert first == "phase unload: 2 KTAP format errors"
    assert "KTAP error: line 4: test number 3 out of sequence (expected 2): 'ok 3 third'" in text
    assert "plan 1..3 but 2 result line(s)" in text


def test_a_cut_off_document_names_the_missing_result_and_the_kernel_report() -> None:
    with pytest.raises(KernelAssertionError) as exc:
        assert_ktap_passed(_phase(log=(KTAP / "truncated.txt").read_text()))
    first, text = _message(exc)
    assert first.startswith("phase load: 1 KTAP test point failed: crashy; ")
    assert "MISSING crashy" in text and "never printed its result line" in text
    assert "subtest crashy has no result line" in text
    assert ("kernel reports in the phase:\n"
            "  oops: BUG: kernel NULL pointer dereference, address: 0000000000000000") in text


def test_no_ktap_document_says_why_with_the_command_and_the_log() -> None:
    log = _ktap("ap: Unknown symbol kml_missing (err -2)", "some other line")
    with pytest.raises(KernelAssertionError) as exc:
        assert_ktap_passed(_phase(log=log, exit_status=1,
                                  output="insmod: ERROR: could not insert module: Unknown symbol"))
    first, text = _message(exc)
    assert first == f"phase load: the module printed no KTAP document (`{LOAD}` (exit 1))"
    assert "insmod said: insmod: ERROR: could not insert module: Unknown symbol" in text
    assert "  module_load_error: ap: Unknown symbol kml_missing (err -2)" in text
    assert "some other line" in text


def test_notes_on_the_log_read_are_quoted() -> None:
    if "notes" not in {f.name for f in dataclasses.fields(Phase)}:
        pytest.skip("this Phase records no notes")
    note = "the ring buffer overflowed: the phase's log is read from the console log"
    with pytest.raises(KernelAssertionError) as exc:
        assert_ktap_passed(_phase(log=_ktap("unrelated"), notes=[note]))
    assert f"note: {note}" in str(exc.value)


# --------------------------------------------------------------------------- kernel reports

def test_module_taint_notices_are_no_complaint() -> None:
    log = _ktap("ap: loading out-of-tree module taints kernel.",
                "ap: module verification failed: signature and/or required key missing")
    assert_no_kernel_complaints(_phase(log=log))
    assert_clean_unload(_phase("unload", log))


@pytest.mark.parametrize("scenario", sorted(p.name for p in DMESG.glob("*.txt")))
def test_each_kernel_report_is_named_by_kind_and_header_line(scenario: str) -> None:
    phase = _phase("unload", (DMESG / scenario).read_text())
    if not phase.complaints:
        assert_no_kernel_complaints(phase)
        return
    with pytest.raises(KernelAssertionError) as exc:
        assert_no_kernel_complaints(phase)
    first, text = _message(exc)
    head = phase.complaints[0]
    assert first.startswith(f"phase unload: the kernel reported {head.kind}")
    assert head.title.strip() in first
    for event in phase.complaints:
        assert f"  {event.kind}" in text and event.title.strip() in text
        assert f"({event.kind}, log line {event.line_no})" in text
    assert UNLOAD in text
    # allowing every kind that occurred makes the same phase pass
    assert_no_kernel_complaints(phase, allow=frozenset(e.kind for e in phase.complaints))


def test_a_warning_names_its_source_line() -> None:
    phase = _phase(log=(DMESG / "x86_64-6.12-warning.txt").read_text())
    with pytest.raises(KernelAssertionError) as exc:
        assert_no_kernel_complaints(phase)
    first, _ = _message(exc)
    assert first == ("phase load: the kernel reported warning: WARNING: CPU: 0 PID: 180 at "
                     "mm/page_alloc.c:4723 __alloc_pages_noprof+0x2c1/0x340")


def test_a_slab_leak_says_which_cache_and_what_was_folded_in() -> None:
    phase = _phase("unload", (DMESG / "x86_64-6.1-slab-leak.txt").read_text())
    with pytest.raises(KernelAssertionError) as exc:
        assert_no_kernel_complaints(phase)
    first, text = _message(exc)
    assert first.startswith("phase unload: the kernel reported slab_leak (with warning): "
                            "BUG ap_leak200 (Tainted:")
    assert "Objects remaining in ap_leak200 on __kmem_cache_shutdown()" in first
    assert "Object 0x00000000a1b2c3d4 @offset=0" in text   # the excerpt follows


# --------------------------------------------------------------------------- model predictions

def test_matching_predictions_pass() -> None:
    assert_matches(exact(192, "mm/slab_common.c:kmalloc_slab()"), 192)
    assert_matches(bounded(100, 90, 110, "mm/slub.c:calculate_order()", "per-cpu slabs"), 110)


def test_an_exact_mismatch_shows_expected_observed_difference_and_rule() -> None:
    rule = "mm/slab_common.c:kmalloc_slab() + kmalloc_info[]"
    with pytest.raises(KernelAssertionError) as exc:
        assert_matches(exact(192, rule), 193, "ksize(160)")
    first, text = _message(exc)
    assert first == "ksize(160): model predicted 192, kernel showed 193 (off by +1)"
    assert f"  rule: {rule}" in text
    assert "why:" not in text


def test_a_bounded_mismatch_shows_the_bound_and_why() -> None:
    with pytest.raises(KernelAssertionError) as exc:
        assert_matches(bounded(100, 90, 110, "mm/slub.c:calculate_order()",
                               "cpu partial slabs vary"), 85, "num_objs")
    first, text = _message(exc)
    assert first == ("num_objs: model predicted 100 within [90, 110], kernel showed 85 "
                     "(5 below the bound)")
    assert "  rule: mm/slub.c:calculate_order()" in text
    assert "  why: cpu partial slabs vary" in text


def test_a_mismatch_of_non_numbers_still_reads() -> None:
    with pytest.raises(KernelAssertionError) as exc:
        assert_matches(exact("kmalloc-192", "mm/slab_common.c:kmalloc_slab()"), "kmalloc-256")
    first, _ = _message(exc)
    assert first == "value: model predicted kmalloc-192, kernel showed kmalloc-256"


# --------------------------------------------------------------------------- slab growth

def test_slab_growth_semantics_are_unchanged() -> None:
    before = BASE.slabinfo["kmalloc-192"]
    after = _with_caches(BASE, ("kmalloc-192", {"active_objs": before.active_objs + 3,
                                                "num_objs": before.num_objs + 21}))
    phase = _phase(after=after)
    assert_slab_growth(phase, "kmalloc-192", at_least=3)
    assert_slab_growth(phase, "kmalloc-192", exactly=3)
    assert_slab_growth(phase, "kmalloc-192", at_least=1, exactly=3)
    assert_slab_growth(phase, "kmalloc-192")
    for kwargs in ({"at_least": 4}, {"exactly": 2}, {"at_least": 1, "exactly": 4}):
        with pytest.raises(KernelAssertionError):
            assert_slab_growth(phase, "kmalloc-192", **kwargs)  # type: ignore[arg-type]


def test_too_little_growth_names_the_cache_the_field_and_both_numbers() -> None:
    before = BASE.slabinfo["kmalloc-192"]
    after = _with_caches(BASE, ("kmalloc-192", {"active_objs": before.active_objs + 3,
                                                "num_objs": before.num_objs + 21,
                                                "num_slabs": before.num_slabs + 1,
                                                "active_slabs": before.active_slabs + 1}))
    with pytest.raises(KernelAssertionError) as exc:
        assert_slab_growth(_phase(after=after), "kmalloc-192", at_least=5)
    first, text = _message(exc)
    assert first == (f"phase load: cache kmalloc-192: active_objs grew by 3, expected at least 5 "
                     f"({before.active_objs} -> {before.active_objs + 3})")
    for field, value in (("active_objs", before.active_objs), ("num_objs", before.num_objs),
                         ("num_slabs", before.num_slabs), ("objsize", before.objsize)):
        assert field in text
    assert f"{before.num_objs} -> {before.num_objs + 21}" in text
    assert f"{before.objsize} -> {before.objsize}" in text


def test_a_cache_created_in_the_phase_says_so() -> None:
    after = _with_caches(BASE, ("ex_hot", {"active_objs": 450, "num_objs": 468}))
    phase = _phase(after=after)
    assert_slab_growth(phase, "ex_hot", at_least=450)
    with pytest.raises(KernelAssertionError) as exc:
        assert_slab_growth(phase, "ex_hot", exactly=500)
    first, _ = _message(exc)
    assert first == ("phase load: cache ex_hot: active_objs grew by 450, expected exactly 500 "
                     "(created during the phase, 450 now)")


def test_a_missing_cache_lists_what_changed_instead() -> None:
    grown = BASE.slabinfo["kmalloc-128"]
    after = _with_caches(BASE, ("ap_other", {"active_objs": 7, "num_objs": 32}),
                         ("kmalloc-128", {"active_objs": grown.active_objs + 500}))
    with pytest.raises(KernelAssertionError) as exc:
        assert_slab_growth(_phase(after=after), "ex_hot", at_least=1)
    first, text = _message(exc)
    assert first == ("phase load: cache 'ex_hot' is not in /proc/slabinfo after the phase (it was "
                     "not there before the phase either; merged into another cache, or never "
                     "created?)")
    rows = text.split("caches created or changed most during the phase:\n", 1)[1].splitlines()
    assert rows[1].split()[0] == "ap_other" and rows[2].split()[0] == "kmalloc-128"

    with pytest.raises(KernelAssertionError) as exc:
        assert_slab_growth(_phase(), "ex_hot", at_least=1)
    assert "no cache was created or changed during the phase" in str(exc.value)


def test_slab_table_marks_absent_caches() -> None:
    after = _with_caches(BASE, ("ex_hot", {"active_objs": 5, "num_objs": 32}))
    table = slab_table(_phase(after=after), ["ex_hot"])
    assert table.splitlines()[1].split() == ["ex_hot", "-", "->", "5", "-", "->", "32",
                                             "-", "->", "0"]


# --------------------------------------------------------------------------- unload

def test_a_clean_unload_passes() -> None:
    loaded = _with_caches(BASE, ("ap_cache", {"active_objs": 5}))
    assert_clean_unload(_phase("unload", before=loaded, after=BASE), module_caches=("ap_cache",))


def test_a_failed_rmmod_names_the_command_and_its_output() -> None:
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(_phase("unload", exit_status=1,
                                   output="rmmod: ERROR: Module ap is in use\n"))
    first, _ = _message(exc)
    assert first == f"phase unload: `{UNLOAD}` (exit 1) failed: rmmod: ERROR: Module ap is in use"


def test_an_unload_with_a_kernel_report_names_it() -> None:
    phase = _phase("unload", (DMESG / "x86_64-6.12-slab-leak.txt").read_text())
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(phase)
    first, _ = _message(exc)
    assert first.startswith("phase unload: the kernel reported slab_leak")


def test_caches_left_after_unload_are_named_with_their_objects() -> None:
    loaded = _with_caches(BASE, ("ap_cache", {"active_objs": 5}), ("ap_other", {"active_objs": 1}))
    left = _with_caches(BASE, ("ap_cache", {"active_objs": 3}))
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(_phase("unload", before=loaded, after=left),
                            module_caches=("ap_cache", "ap_other"))
    first, text = _message(exc)
    assert first == (f"phase unload: 1 cache of the module still in /proc/slabinfo after "
                     f"`{UNLOAD}` (exit 0): ap_cache (3 active_objs)")
    assert "5 -> 3" in text


def test_vmalloc_areas_left_after_unload_are_named_with_their_caller() -> None:
    phase = _phase("unload", before=_snapshot(MODULE_AREA), after=_snapshot(MODULE_AREA))
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(phase)
    first, text = _message(exc)
    assert first == (f"phase unload: 1 vmalloc area of module ap (12288 bytes) still mapped after "
                     f"`{UNLOAD}` (exit 0):")
    assert "  12288 bytes, 2 pages, caller ap_init+0x1e/0x1000 [ap]" in text
