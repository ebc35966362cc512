"""dmesg lines and report detection (batch and streaming)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.observe import EventDetector, ParseError, find_events, find_lockup, parse_dmesg
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
    ("BUG: sleeping function called from invalid context at mm/slub.c:3412", "might_sleep"),
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
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:212]", "lockup"),
    ("BUG: soft lockup - CPU#1 stuck for 23s! [kworker/1:1:40]", "lockup"),
    ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", "lockup"),
    ("watchdog: Watchdog detected hard LOCKUP on cpu 3", "lockup"),
    ("watchdog: CPU3: Watchdog detected hard LOCKUP on cpu 3", "lockup"),
    ("rcu: INFO: rcu_preempt self-detected stall on CPU", "lockup"),
    ("rcu: INFO: rcu_sched self-detected stall on CPU", "lockup"),
    ("INFO: rcu_sched self-detected stall on CPU", "lockup"),
    ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "lockup"),
    ("rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: {", "lockup"),
    ("INFO: rcu_tasks detected stalls on tasks:", "lockup"),
    ("INFO: task insmod:212 blocked for more than 120 seconds.", "lockup"),
    ("INFO: task kworker/u4:2:77 blocked for more than 5 seconds.", "lockup"),
    ("Kernel panic - not syncing: softlockup: hung tasks", "panic"),
])
def test_classify(text: str, kind: str) -> None:
    found = classify(text)
    assert found is not None and found[0] == kind


@pytest.mark.parametrize("text", [
    "random: crng init done", "WARNING: not fatal here", "  BUG: indented is not a header",
    "Run /init as init process", "Oopsie", "ok 1 BUG: in a test name",
    "NMI watchdog: Perf NMI watchdog permanently disabled",
    "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.",
    "rcu: \t(detected by 1, t=5252 jiffies, g=1357, q=34 ncpus=2)",
    "INFO: Stall ended before state dump start",
])
def test_not_triggers(text: str) -> None:
    assert classify(text) is None


# Expected reports per scenario: (kind, kinds, subject fragment, complete, ended_by).
EXPECTED = {
    # Recorded by `kmodlab faults` on the x86_64 6.1 fault-injection+debug-memory kernel: the
    # injected kmalloc() failure (its own event, ended by its stack's </TASK>, no complaint),
    # then the unchecked module writing through NULL.
    "x86_64-6.1-fault-injection-crash.txt": [
        ("module_taint", None, "kml_ep_unchecked", True, "single line"),
        ("fault_injection", ("fault_injection",), "forcing a failure", True, "end marker"),
        ("kasan", ("kasan",), "null-ptr-deref in ep_unchecked_init", True, "end marker"),
        ("oops", ("oops", "oops"), "NULL pointer dereference", True, "end marker"),
        ("panic", ("panic",), "Fatal exception", False, "end of input"),
    ],
    # kml_pressure (kmodlab claims): GFP_NOWAIT without __GFP_NOWARN failing under pressure;
    # warn_alloc()'s notice, its stack and show_mem(), is an event but no complaint
    "arm64-6.1-alloc-failure.txt": [
        ("alloc_failure", ("alloc_failure",), "insmod: page allocation failure: order:0",
         True, "end of backtrace"),
    ],
    # A lab's timeouts.blocked (hung_task_panic): khungtaskd's report on the student's insmod,
    # its stack in waste_init, then the panic that ends the step (as the grader's excerpt).
    "x86_64-6.1-hung-task-panic.txt": [
        ("lockup", ("lockup",), "insmod:115 blocked for more than 4 seconds", True,
         "end marker"),
        ("panic", ("panic",), "hung_task: blocked tasks", False, "end of input"),
    ],
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
    # real captures (kml_late, kml_flood of tests/integration/data): WARN(1, "msg") prints the
    # message between "cut here" and the WARNING: line
    "x86_64-6.1-delayed-warning.txt": [
        ("warning", ("warning",), "kml_late.c:18", True, "end marker"),
    ],
    "x86_64-6.1-warning-in-flood.txt": [
        ("warning", ("warning",), "kml_flood.c:", True, "end marker"),
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
        ("might_sleep", ("might_sleep",), "sleeping function", True, "end marker"),
        ("warning", ("warning",), "mm/slab_common.c:493", True, "end marker"),
    ],
    # Recorded on Debian 6.1 (x86_64, 2 CPUs, TCG) with a module spinning in its init with
    # preemption off, blocked in TASK_UNINTERRUPTIBLE, or spinning with interrupts off.
    "x86_64-6.1-soft-lockup.txt": [
        ("module_taint", None, "lockmod", True, "single line"),
        ("module_taint", None, "lockmod", True, "single line"),
        ("lockup", ("lockup",), "rcu_preempt self-detected stall on CPU", True, "end marker"),
        ("lockup", ("lockup",), "CPU#0 stuck for 18s! [insmod:116]", True, "end marker"),
    ],
    "x86_64-6.1-hung-task.txt": [
        ("module_taint", None, "lockmod", True, "single line"),
        ("module_taint", None, "lockmod", True, "single line"),
        ("lockup", ("lockup",), "insmod:117 blocked for more than 5 seconds", True, "end marker"),
        ("lockup", ("lockup",), "insmod:117 blocked for more than 10 seconds", True,
         "end marker"),
        ("lockup", ("lockup",), "insmod:117 blocked for more than 15 seconds", True,
         "end marker"),
    ],
    "x86_64-6.1-rcu-stall.txt": [
        ("module_taint", None, "lockmod", True, "single line"),
        ("module_taint", None, "lockmod", True, "single line"),
        ("lockup", ("lockup",), "rcu_preempt detected stalls on CPUs/tasks:", True, "end marker"),
    ],
    # kernel.softlockup_panic=1: the whole console, and the excerpt the guest layer's console
    # watcher cut around the panic (what the grader receives in KernelCrash.excerpt).
    "x86_64-6.1-softlockup-panic.txt": [
        ("module_taint", None, "lockmod", True, "single line"),
        ("module_taint", None, "lockmod", True, "single line"),
        ("lockup", ("lockup",), "CPU#1 stuck for 13s! [insmod:117]", True, "end marker"),
        ("panic", ("panic",), "softlockup: hung tasks", False, "end of input"),
    ],
    "x86_64-6.1-softlockup-panic-excerpt.txt": [
        ("panic", ("panic",), "softlockup: hung tasks", False, "end of input"),
    ],
    # The same on Debian 6.12 arm64: no </TASK>, the report ends with its backtrace.
    "arm64-6.12-soft-lockup.txt": [
        ("module_taint", None, "lockmod", True, "single line"),
        ("module_taint", None, "lockmod", True, "single line"),
        ("lockup", ("lockup",), "CPU#0 stuck for 11s! [insmod:167]", True, "end of backtrace"),
        ("lockup", ("lockup",), "CPU#0 stuck for 22s! [insmod:167]", True, "end of backtrace"),
    ],
    "arm64-6.12-hung-task.txt": [
        ("module_taint", None, "lockmod", True, "single line"),
        ("module_taint", None, "lockmod", True, "single line"),
        ("lockup", ("lockup",), "insmod:168 blocked for more than 5 seconds", True,
         "end of backtrace"),
        ("lockup", ("lockup",), "insmod:168 blocked for more than 10 seconds", True,
         "end of backtrace"),
        ("lockup", ("lockup",), "insmod:168 blocked for more than 15 seconds", True,
         "end of backtrace"),
    ],
    "arm64-6.12-softlockup-panic-excerpt.txt": [
        ("panic", ("panic",), "softlockup: hung tasks", False, "end of input"),
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


def test_a_warn_s_own_message_is_in_its_excerpt() -> None:
    (event,) = find_events((SCENARIOS / "x86_64-6.1-delayed-warning.txt").read_text())
    assert event.text.splitlines()[:3] == ["------------[ cut here ]------------",
                                           "kmodlab delayed warning", event.title]


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


LOCKUP_SCENARIOS = {
    "x86_64-6.1-soft-lockup.txt": ["RCU stall", "soft lockup"],
    "x86_64-6.1-hung-task.txt": ["hung task"] * 3,
    "x86_64-6.1-rcu-stall.txt": ["RCU stall"],
    "x86_64-6.1-softlockup-panic.txt": ["soft lockup", "soft lockup"],
    "x86_64-6.1-softlockup-panic-excerpt.txt": ["soft lockup"],
    "arm64-6.12-soft-lockup.txt": ["soft lockup", "soft lockup"],
    "arm64-6.12-hung-task.txt": ["hung task"] * 3,
    "arm64-6.12-softlockup-panic-excerpt.txt": ["soft lockup"],
}


@pytest.mark.parametrize("name", sorted(LOCKUP_SCENARIOS))
def test_lockups_say_what_locked_up(name: str) -> None:
    text = (SCENARIOS / name).read_text()
    events = find_events(text)
    assert [e.lockup for e in events if e.lockup] == LOCKUP_SCENARIOS[name]
    first = find_lockup(text)
    assert first is not None and first.lockup == LOCKUP_SCENARIOS[name][0]
    for event in events:
        if event.kind == "lockup":
            assert event.title == event.lines[0].text      # the header line leads the report
            assert event.is_complaint and not event.is_crash
            last = event.excerpt.splitlines()[-1]
            assert last.endswith("</TASK>") if name.startswith("x86_64") else \
                last.endswith("el0t_64_sync+0x190/0x198")
    done = [e for e in events if "lockmod: done" in e.text]
    assert not done                                  # the module's next line is not swallowed


def test_lockup_panics_name_their_detector() -> None:
    for reason, what in [("softlockup: hung tasks", "soft lockup"), ("Hard LOCKUP", "hard lockup"),
                         ("hung_task: blocked tasks", "hung task"), ("RCU Stall", "RCU stall"),
                         ("Watchdog detected hard LOCKUP on cpu 2", "hard lockup")]:
        (event,) = find_events(f"[ 9.0] Kernel panic - not syncing: {reason}\n")
        assert event.kind == "panic" and event.is_crash and event.lockup == what
    (fatal,) = find_events("[ 9.0] Kernel panic - not syncing: Fatal exception\n")
    assert fatal.lockup is None and find_lockup("[ 9.0] Kernel panic - not syncing: x\n") is None


def test_a_panic_after_a_lockup_header_joins_its_report() -> None:
    text = ("[ 1.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:99]\n"
            "[ 1.1] Modules linked in: kml(OE+)\n"
            "[ 1.2] Kernel panic - not syncing: softlockup: hung tasks\n"
            "[ 1.3] ---[ end Kernel panic - not syncing: softlockup: hung tasks ]---\n")
    (event,) = find_events(text)
    assert event.kind == "panic" and event.kinds == ("lockup", "panic") and event.complete
    assert event.lockup == "soft lockup" and event.title.startswith("watchdog: BUG: soft lockup")


def test_an_allocation_failure_notice_is_not_a_complaint() -> None:
    (event,) = find_events((SCENARIOS / "arm64-6.1-alloc-failure.txt").read_text())
    assert event.kind == "alloc_failure" and not event.is_complaint and not event.is_crash


def test_lockups_are_not_crash_kinds() -> None:
    from kmodlab.observe.dmesg import BENIGN_KINDS, CRASH_KINDS
    assert "lockup" not in CRASH_KINDS and "lockup" not in BENIGN_KINDS
