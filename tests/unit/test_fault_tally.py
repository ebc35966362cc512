"""The fault tally's counting rules (tests/faultzoo.py): a zero must mean zero."""

from __future__ import annotations

import json
from pathlib import Path

import faultzoo
import pytest


def entry(cls: str, outcome: str, target: str = "x86_64-6.1", reason: str = "",
          **props: int) -> dict:
    return {"outcome": outcome, "reason": reason,
            "props": {"class": cls, "target": target, **props}}


def test_a_recorded_false_pass_and_an_unexplained_failure_both_count() -> None:
    tally = faultzoo.tally({
        "zoo[ok]": entry("false_pass", "passed", false_pass=0),
        "zoo[flood]": entry("false_pass", "failed", false_pass=1),
        "zoo[wrong-kind]": entry("false_pass", "failed", false_pass=0),   # failed, not a pass
        "leaks[x]": entry("false_pass", "failed"),                        # said nothing: counted
        "zoo[control]": entry("false_pass", "failed", false_alarm=1),
        "zoo[skipped]": entry("false_pass", "skipped", reason="no KVM"),
    })
    row = tally.rows["false_pass"]["x86_64-6.1"]
    assert (row.tried, row.held, row.failed, row.skipped) == (5, 1, 4, 1)
    assert row.false_passes == 2 and row.false_alarms == 1
    assert row.skips == ["zoo[skipped]: no KVM"]


def test_host_bytes_are_summed_and_healed_entries_are_passed_cache_tests() -> None:
    tally = faultzoo.tally({
        "jail[a]": entry("host_leak", "passed", host_bytes_leaked=0),
        "jail[b]": entry("host_leak", "failed", host_bytes_leaked=48),
        "cache[a]": entry("cache_heal", "passed", target="host"),
        "cache[b]": entry("cache_heal", "failed", target="host"),
    })
    totals = tally.totals()
    assert totals["host_leak"].host_bytes_leaked == 48 and totals["host_leak"].failed == 1
    assert totals["cache_heal"].healed == 1 and totals["cache_heal"].tried == 2


def test_record_outside_a_test_is_ignored_and_unknown_keys_refused() -> None:
    faultzoo.record("false_pass", 1)          # no current item: nothing to attach it to
    with pytest.raises(ValueError, match="unknown fault measurement"):
        faultzoo.record("bytes", 1)


def test_dump_keeps_results_by_test_id(tmp_path: Path) -> None:
    results = {"jail[a]": entry("host_leak", "passed", host_bytes_leaked=0)}
    faultzoo.dump(str(tmp_path / "t.json"), results)
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["results"] == results
    assert data["tally"]["rows"]["host_leak"]["x86_64-6.1"]["tried"] == 1

