"""Check kinds evaluated on observations built from captured /proc files and kernel logs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kmodlab.channel.protocol import CommandResult
from kmodlab.labs.checks import evaluate_checks
from kmodlab.labs.engine import Observations
from kmodlab.labs.lab import parse_lab_text
from kmodlab.labs.params import parameter_env
from kmodlab.labs.views import OutputView
from kmodlab.model import Model
from kmodlab.observe import (
    find_events,
    parse_buddyinfo,
    parse_ktap,
    parse_meminfo,
    parse_slabinfo,
    parse_vmallocinfo,
)
from kmodlab.runner import ProcSnapshot

try:
    from ._fake_guest import edit_slabinfo
except ImportError:  # tests/unit is a plain directory
    from _fake_guest import edit_slabinfo  # type: ignore[no-redef]

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc" / "x86_64-6.1"
DMESG = Path(__file__).resolve().parent.parent / "fixtures" / "dmesg"


def snapshot(**bump: int) -> ProcSnapshot:
    """The captured /proc files, with ``bump`` added to caches' active_objs."""
    return ProcSnapshot(parse_slabinfo(edit_slabinfo((PROC / "slabinfo.txt").read_text(), bump)),
                        parse_buddyinfo((PROC / "buddyinfo.txt").read_text()),
                        parse_vmallocinfo((PROC / "vmallocinfo.txt").read_text()),
                        parse_meminfo((PROC / "meminfo.txt").read_text()))


KTAP = """\
[    1.0] KTAP version 1
[    1.0] 1..1
[    1.0] # alloc: requested=100 ksize=128 waste=28 count=64
[    1.0] ok 1 alloc
"""

LAB = """\
title: T
instructions: x
module: kml_t
submit: [t.c]
parameters: {size: 100, count: 64}
derived: {cache: model.kmalloc_cache_for(size)}
checks:
  - {name: ktap, ktap: alloc}
  - {name: ksize, model: {predict: model.ksize(size), observed: ktap.alloc.ksize}}
  - {name: waste, expect: ktap.alloc.waste == model.ksize(size) - size}
  - {name: slab, expect: 'loaded.slab[cache].active_objs - before.slab[cache].active_objs >= count'}
  - {name: leaks, no_leaks: {caches: ["{{ cache }}"], tolerance: "{{ count // 2 }}"}}
  - {name: clean, no_crash: true}
  - {name: greeting, dmesg: 'ok 1 alloc'}
  - {name: quiet, dmesg_absent: 'WARNING'}
  - {name: read, expect: read.stats.sum == 3 and read.stats.text.startswith == 1}
"""


def run_checks(obs: Observations, lab_text: str = LAB):
    spec = parse_lab_text(textwrap.dedent(lab_text))
    model = Model("x86_64", (6, 1))
    env = parameter_env(spec, {"size": 100, "count": 64}, model, {"ncpus": 1})
    return {r.name: r for r in evaluate_checks(spec, spec.checks, obs, env, model)}


def good_obs(leak: int = 0, log: str = KTAP) -> Observations:
    obs = Observations()
    obs.snapshots = {"before": snapshot(), "loaded": snapshot(**{"kmalloc-128": 64}),
                     "after": snapshot(**{"kmalloc-128": leak})}
    obs.phase_logs = {"load": log}
    obs.ktap = parse_ktap(log)
    obs.events = find_events(log)
    obs.unload = CommandResult("rmmod", 0, b"", b"", 0.1)
    obs.outputs["stats"] = OutputView("read.stats", "sum=3 cpu0=3\n", 0, False)
    return obs


def test_a_good_run_passes() -> None:
    results = run_checks(good_obs())
    failed = {n: (r.expected, r.observed, r.message) for n, r in results.items()
              if not r.passed and n != "read"}
    assert not failed
    assert results["ksize"].expected.startswith("model.ksize(size) = 128 (exact")
    assert "ktap.alloc.ksize = 128" in results["ksize"].observed


def test_expected_and_observed_values_are_reported() -> None:
    obs = good_obs(log=KTAP.replace("ksize=128 waste=28", "ksize=100 waste=0"))
    results = run_checks(obs)
    assert not results["ksize"].passed and "= 100" in results["ksize"].observed
    assert not results["waste"].passed
    assert "ktap.alloc.waste = 0" in results["waste"].observed


def test_leak_detection() -> None:
    results = run_checks(good_obs(leak=64))
    assert not results["leaks"].passed
    assert "kmalloc-128: 64 more live objects" in results["leaks"].observed
    assert run_checks(good_obs(leak=10))["leaks"].passed


def test_kernel_reports_fail_no_crash_with_the_excerpt() -> None:
    warning = (DMESG / "x86_64-6.12-warning.txt").read_text()
    results = run_checks(good_obs(log=KTAP + warning))
    assert not results["clean"].passed and "warning" in results["clean"].observed
    assert not results["quiet"].passed


def test_sleeping_in_atomic_context_fails_no_crash() -> None:
    # A might_sleep report is not a crash (the kernel goes on), but a student's GFP_KERNEL
    # under a spinlock must still fail the lab's no_crash check.
    report = (DMESG / "printk-caller-sleeping.txt").read_text().split("[    9.0")[0]
    results = run_checks(good_obs(log=KTAP + report))
    assert not results["clean"].passed and "might_sleep" in results["clean"].observed


def test_slab_leak_report_fails_no_leaks() -> None:
    leak = (DMESG / "x86_64-6.1-slab-leak.txt").read_text()
    results = run_checks(good_obs(log=KTAP + leak))
    assert not results["leaks"].passed and "Objects remaining" in results["leaks"].observed


def test_missing_observations_fail_with_the_reason() -> None:
    obs = Observations()
    obs.snapshots = {"before": snapshot()}
    obs.crash, obs.crash_kind = "BUG: kernel NULL pointer dereference", "oops"
    results = run_checks(obs)
    assert not any(r.passed for r in results.values() if r.name not in ("quiet",))
    assert "'loaded' was not observed: the kernel crashed (oops)" in results["slab"].message
    assert "no KTAP test point 'alloc' was printed" in results["ksize"].message
    assert "oops" in results["clean"].observed


def test_a_console_flood_is_not_a_clean_kernel() -> None:
    obs = good_obs()
    obs.flood = True
    result = run_checks(obs)["clean"]
    assert not result.passed and "flooded the console" in result.observed


def test_unknown_names_are_explained() -> None:
    text = LAB + "  - {name: typo, expect: ktap.alloc.kszie == 1}\n"
    result = run_checks(good_obs(), text)["typo"]
    assert not result.passed and "printed no value 'kszie'" in result.message
    assert "ksize" in result.message


@pytest.mark.parametrize("expr", ["ktap.alloc", "before.slab"])
def test_non_boolean_expectations_fail(expr: str) -> None:
    result = run_checks(good_obs(), LAB + f"  - {{name: nb, expect: '{expr}'}}\n")["nb"]
    assert not result.passed


SHARED_LAB = """\
title: T
instructions: x
module: kml_t
submit: [t.c]
parameters: {offset: 100, count: 3, word: 1234}
checks:
  - {name: words, expect: 'shared.runs == ((offset, word, count),)'}
  - {name: size, expect: shared.size == 1048576}
  - {name: unmapped, expect: after.ioremap.count == before.ioremap.count}
"""


def _shared_results(shared: str | None, after: ProcSnapshot | None = None):
    obs = good_obs()
    obs.shared = shared
    if after is not None:
        obs.snapshots["after"] = after
    spec = parse_lab_text(SHARED_LAB)
    model = Model("x86_64", (6, 1))
    env = parameter_env(spec, {"offset": 100, "count": 3, "word": 1234}, model, {"ncpus": 1})
    return {r.name: r for r in evaluate_checks(spec, spec.checks, obs, env, model)}


def test_shared_memory_view_reads_the_host_file_runs() -> None:
    from kmodlab.observe.shared_memory import format_runs

    data = bytearray(1 << 20)
    data[100:112] = (1234).to_bytes(4, "little") * 3
    results = _shared_results(format_runs(bytes(data)))
    assert results["words"].passed and results["size"].passed and results["unmapped"].passed
    # one word short: the run is (100, 1234, 2), and the check says what it saw
    data[108:112] = bytes(4)
    short = _shared_results(format_runs(bytes(data)))["words"]
    assert not short.passed and "(100, 1234, 2)" in short.observed


def test_no_shared_memory_fails_with_the_reason() -> None:
    results = _shared_results(None)
    assert not results["words"].passed
    assert "no shared memory" in results["words"].message + results["words"].observed


def test_an_ioremap_area_left_after_unload_is_counted() -> None:
    extra = "0x1-0x2   20480 kml_t_map+0x1/0x2 [kml_t] phys=0x00000000fea00000 ioremap\n"
    text = (PROC / "vmallocinfo.txt").read_text() + extra
    after = ProcSnapshot(snapshot().slabinfo, snapshot().buddyinfo, parse_vmallocinfo(text),
                         snapshot().meminfo)
    results = _shared_results(None, after=after)
    assert not results["unmapped"].passed


# -------------------------------------------------------------- requirements and buddy views
REQUIRES_LAB = """\
title: T
instructions: x
module: kml_t
submit: [t.c]
parameters: {order: 9}
requires:
  - name: fragmented
    expect: before.largest_free_order(model.preferred_zone(before.zones)) < order
checks:
  - {name: clean, no_crash: true}
"""


def _requirements(lab_text: str, obs: Observations) -> list[str]:
    from kmodlab.labs.checks import unmet_requirements

    spec = parse_lab_text(textwrap.dedent(lab_text))
    model = Model("x86_64", (6, 1))
    env = parameter_env(spec, {"order": 9}, model, {"ncpus": 1})
    return unmet_requirements(spec, obs, env, model)


def test_buddy_views_name_the_zones_and_their_largest_free_order() -> None:
    from kmodlab.labs.views import SnapshotView

    view = SnapshotView("before", snapshot(), "kml_t")
    assert view.zones == ("DMA", "DMA32")
    largest = view.expr_attr("largest_free_order")
    assert largest("DMA32") == 10 and largest("DMA") == 10
    with pytest.raises(Exception, match="no zone 'Normal'"):
        largest("Normal")


def test_an_unmet_requirement_is_named_and_a_met_one_is_not() -> None:
    # the captured buddyinfo has 101 free order-10 blocks in DMA32: not fragmented
    unmet = _requirements(REQUIRES_LAB, good_obs())
    assert len(unmet) == 1 and unmet[0].startswith("fragmented:")
    fragmented = good_obs()
    fragmented.snapshots["before"] = ProcSnapshot(
        snapshot().slabinfo, parse_buddyinfo(
            "Node 0, zone      DMA      0      0      0      0      0      1      1      1      0"
            "      1      3\n"
            "Node 0, zone    DMA32  50000    100      3      1      0      0      0      0      0"
            "      0      0\n"), snapshot().vmallocinfo, snapshot().meminfo)
    assert _requirements(REQUIRES_LAB, fragmented) == []


def test_a_requirement_that_cannot_be_evaluated_is_unmet() -> None:
    obs = good_obs()
    del obs.snapshots["before"]
    unmet = _requirements(REQUIRES_LAB, obs)
    assert len(unmet) == 1 and "could not evaluate" in unmet[0]


def test_a_lab_names_only_known_guest_tools() -> None:
    with pytest.raises(Exception, match="unknown guest tool"):
        parse_lab_text(textwrap.dedent(REQUIRES_LAB) + "tools: [vmstat]\n")
    assert parse_lab_text(textwrap.dedent(REQUIRES_LAB) + "tools: [kml_fragment]\n"
                          ).tools == ["kml_fragment"]
