"""dmesg lines and report detection (batch and streaming)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.observe import EventDetector, ParseError, find_events, parse_dmesg
from kmodlab.observe.dmesg import classify, parse_line, strip_prefixes

SCENARIOS = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"


def test_line_prefixes() -> None:
    a = parse_line("[   12.345678] hello world")
    assert a is not None and (a.timestamp, a.level, a.text) == (12.345678, None, "hello world")
    b = parse_line("<4>[    3.000000] ap: loading out-of-tree module taints kernel.")
    assert b is not None and b.level == 4 and b.text.startswith("ap:")
    c = parse_line("[    7.000000][  T150] BUG: x")
    assert c is not None and c.caller == "T150" and c.text == "BUG: x"
    d = parse_line("6,1234,5678901,-;kmsg record")
    assert d is not None and d.timestamp == 5.678901 and d.level == 6
    e = parse_line("[    1.000000]     indented ok 1 x")
    assert e is not None and e.text == "    indented ok 1 x"       # indentation kept (KTAP)
    assert parse_line("no prefix at all") is None


def test_parse_dmesg_strict_and_lenient() -> None:
    text = "[    1.0] a\nshell output\n[    2.0] b\n"
    with pytest.raises(ParseError) as err:
        parse_dmesg(text)
    assert err.value.line_no == 2
    lines = parse_dmesg(text, strict=False)
    assert [l.timestamp for l in lines] == [1.0, None, 2.0]
    assert parse_dmesg("6,1,100,-;msg\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:01.0\n")[0].text == "msg"
    assert strip_prefixes("[    1.0] a\nplain") == "a\nplain"


@pytest.mark.parametrize("text, kind", [
    ("Oops: 0002 [#1] PREEMPT SMP NOPTI", "oops"),
    ("Oops: general protection fault, probably for non-canonical address", "oops"),
    ("BUG: unable to handle page fault for address: ffffffffc0a01000", "oops"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000000", "oops"),
    ("general protection fault, probably for non-canonical address 0xdead", "oops"),
    ("Unable to handle kernel paging request at virtual address dead000000000100", "oops"),
    ("Internal error: Oops: 0000000096000045 [#1] SMP", "oops"),
    ("kernel BUG at mm/slub.c:435!", "bug"),
    ("BUG: sleeping function called from invalid context at mm/slub.c:3412", "bug"),
    ("BUG kmalloc-64 (Tainted: G    B): Right Redzone overwritten", "bug"),
    ("WARNING: CPU: 0 PID: 1 at mm/slab_common.c:493 kmem_cache_destroy+0x11d/0x130", "warning"),
    ("WARNING: possible circular locking dependency detected", "warning"),
    ("Kernel panic - not syncing: Fatal exception", "panic"),
    ("BUG ap_leak200 (Tainted: G  OE): Objects remaining in ap_leak200 on __kmem_cache_shutdown()",
     "slab_leak"),
    ("kmem_cache_destroy ap: Slab cache still has objects when called from x+0x1/0x2 [ap]",
     "slab_leak"),
    ("BUG: KASAN: slab-out-of-bounds in ap_oob+0x1e/0x40 [ap]", "kasan"),
    ("BUG: KFENCE: out-of-bounds write in ap_oob+0x1e/0x40 [ap]", "kfence"),
    ("UBSAN: array-index-out-of-bounds in drivers/x.c:12:3", "ubsan"),
    ("ap: loading out-of-tree module taints kernel.", "module_taint"),
    ("bp: Unknown symbol kmalloc_trace (err -2)", "module_load_error"),
])
def test_classify(text: str, kind: str) -> None:
    found = classify(text)
    assert found is not None and found[0] == kind


@pytest.mark.parametrize("text", [
    "random: crng init done", "WARNING: not fatal here", "  BUG: indented is not a header",
    "Run /init as init process", "Oopsie", "ok 1 BUG: in a test name",
])
def test_not_triggers(text: str) -> None:
    assert classify(text) is None


# Expected reports per scenario: (kind, kinds, subject fragment, complete, ended_by).
EXPECTED = {
    "x86_64-6.1-null-deref-panic.txt": [
        ("module_taint", None, "ap", True, "single line"),
        ("oops", ("oops", "oops"), "NULL pointer", True, "end marker"),
        ("panic", ("panic",), "Fatal exception", True, "end marker"),
    ],
    "x86_64-6.1-slab-leak.txt": [
        ("slab_leak", ("slab_leak", "slab_leak", "warning"), "ap_leak200", True, "end marker"),
    ],
    "x86_64-6.12-slab-leak.txt": [
        ("slab_leak", ("slab_leak", "warning"), "ap_leak200", True, "end marker"),
        ("slab_leak", ("slab_leak", "warning"), "ap_leak200", True, "end marker"),
    ],
    "arm64-6.12-oops.txt": [
        ("oops", ("oops", "oops"), "NULL pointer", True, "end marker"),
    ],
    "x86_64-6.12-warning.txt": [
        ("module_taint", None, "ap", True, "single line"),
        ("warning", ("warning",), "mm/page_alloc.c:4723", True, "end marker"),
    ],
    "arm64-6.1-bug.txt": [
        ("bug", ("bug", "oops"), "mm/slub.c:435", True, "end marker"),
    ],
    "x86_64-6.12-kasan-kfence.txt": [
        ("kfence", ("kfence",), "out-of-bounds write", True, "end marker"),
        ("kasan", ("kasan",), "slab-out-of-bounds", True, "end marker"),
    ],
    "module-messages.txt": [
        ("module_taint", None, "ap", True, "single line"),
        ("module_taint", None, "ap", True, "single line"),
        ("module_load_error", None, "bp", True, "single line"),
        ("module_load_error", None, "cp", True, "single line"),
        ("module_load_error", None, "dp", True, "single line"),
        ("module_load_error", None, "ep", True, "single line"),
    ],
    "printk-caller-sleeping.txt": [
        ("bug", ("bug",), "sleeping function", False, "next event"),
        ("warning", ("warning",), "mm/slab_common.c:493", True, "end marker"),
    ],
}


def test_every_scenario_has_expectations() -> None:
    assert {p.name for p in SCENARIOS.glob("*.txt")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_events(name: str) -> None:
    text = (SCENARIOS / name).read_text()
    parse_dmesg(text)  # every scenario is a well-formed log
    events = find_events(text)
    got = [(e.kind, e.kinds, e.subject, e.complete, e.ended_by) for e in events]
    assert len(got) == len(EXPECTED[name]), got
    for event, (kind, kinds, subject, complete, ended_by) in zip(events, EXPECTED[name]):
        assert event.kind == kind
        if kinds is not None:
            assert event.kinds == kinds
        assert subject in event.subject
        assert (event.complete, event.ended_by) == (complete, ended_by)
        assert event.lines[0].line_no <= event.line_no
        assert event.excerpt.splitlines()[0] == event.lines[0].raw


def test_slab_leak_excerpt_spans_report() -> None:
    (event,) = find_events((SCENARIOS / "x86_64-6.1-slab-leak.txt").read_text())
    text = event.text
    assert text.startswith("=" * 77)          # the separator before the BUG line is included
    assert "Object 0x" in text and "end trace" in event.excerpt.splitlines()[-1]
    assert not event.is_crash


def test_crash_flags_and_module_name() -> None:
    events = find_events((SCENARIOS / "x86_64-6.1-null-deref-panic.txt").read_text())
    assert [e.is_crash for e in events] == [False, True, True]
    assert events[0].module == "ap" and events[1].module is None
    assert events[1].timestamp == 12.1


def test_panic_inside_a_warning_upgrades_it() -> None:
    text = ("[ 1.0] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\n"
            "[ 1.1] Kernel panic - not syncing: kernel: panic_on_warn set ...\n"
            "[ 1.2] ---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---\n")
    (event,) = find_events(text)
    assert event.kind == "panic" and event.kinds == ("warning", "panic") and event.complete


def test_line_limit_bounds_excerpt() -> None:
    text = "[ 1.0] BUG: soft lockup - CPU#0 stuck for 22s!\n" + "[ 1.1] x\n" * 500
    (event,) = find_events(text, max_lines=50)
    assert len(event.lines) == 50 and event.ended_by == "line limit" and not event.complete


def test_streaming_in_odd_chunks_matches_batch() -> None:
    text = "".join((SCENARIOS / n).read_text() for n in sorted(EXPECTED))
    batch = [(e.kind, e.kinds, e.line_no) for e in find_events(text)]
    det = EventDetector()
    streamed = []
    for i in range(0, len(text), 37):
        streamed.extend(det.feed(text[i:i + 37]))
    streamed.extend(det.finish())
    assert [(e.kind, e.kinds, e.line_no) for e in streamed] == batch
    assert det.events == streamed


def test_streaming_exposes_the_open_report() -> None:
    det = EventDetector()
    assert det.feed("[ 1.0] Oops: 0002 [#1] SMP\n[ 1.1] CPU: 0 PID: 1\n[ 1.2] partial") == []
    open_event = det.open_event
    assert open_event is not None and open_event.kind == "oops" and len(open_event.lines) == 2
    done = det.feed(" line\n[ 1.3] ---[ end trace 0000000000000000 ]---\n")
    assert len(done) == 1 and done[0].complete and len(done[0].lines) == 4
    assert det.open_event is None and det.finish() == []


def test_console_log_with_shell_noise() -> None:
    text = ("~ # insmod ap.ko\r\n[   12.1] BUG: kernel NULL pointer dereference, address: 0\r\n"
            "[   12.2] Oops: 0002 [#1] SMP\r\n~ # \r\n")
    (event,) = find_events(text)
    assert event.kind == "oops" and event.ended_by == "end of input"
    assert "~ # " in event.excerpt                  # unprefixed console lines stay in the report


def test_event_becomes_a_kernel_crash() -> None:
    from kmodlab.errors import KernelCrash
    events = find_events((SCENARIOS / "arm64-6.12-oops.txt").read_text())
    crash = events[0].as_crash(state="running module", log_path="/tmp/console.log")
    assert isinstance(crash, KernelCrash) and crash.kind == "oops"
    assert "Internal error: Oops" in crash.excerpt and "running module" in str(crash)
