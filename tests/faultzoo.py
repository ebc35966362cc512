"""The fault tally: which tests try a fault, what each one found, and the sums.

A test that demonstrates one of the Trust faults carries ``@pytest.mark.fault(CLASS)``:

================  =====================================================================
``host_leak``     a hostile submission tries to read a host file through the grader
``false_pass``    a faulty module (crash, WARN, lockup, hang, flood, leak, bad KTAP...)
                  must never get an OK verdict; its healthy controls must get one
``cache_heal``    a damaged cache entry (truncated snapshot, corrupted .ko, half-deleted
                  kernel, a killed run's leftovers) must be found and rebuilt
``bad_input``     impossible options or a QEMU that cannot start give one clear error
``ktap``          KTAP edge cases are judged as kunit_tool judges them
================  =====================================================================

While it runs, a test records what it measured with :func:`record` (this module is importable
from every test: ``tests/`` is on ``sys.path`` through ``tests/conftest.py``):

* ``false_pass``: 1 when a faulty module got an OK verdict (the test then fails);
* ``false_alarm``: 1 when a healthy control did not get one;
* ``host_bytes_leaked``: the number of host bytes (canary or /etc/passwd) found in anything the
  grader produced.

``tests/conftest.py`` turns the reports into :class:`Tally` at the end of the session: the
terminal summary prints it and, when ``KMODLAB_ZOO_REPORT`` names a file, it is written there as
JSON (``scripts/fault-zoo`` merges those files into the README's table).  Counting rules, so
that a zero means zero:

* *tried*: fault tests that ran (passed or failed; skips are listed apart, with their reason);
* *false passes*: the recorded ``false_pass`` values, plus every failed ``false_pass``-class test
  that recorded no verdict at all (a failure that cannot say it was not a false pass counts as
  one);
* *host bytes leaked*: the recorded sums, and a failed ``host_leak`` test that recorded nothing
  is listed as failed (it may have failed before looking);
* *entries healed*: passed ``cache_heal`` tests (each one damages an entry and asserts it was
  rebuilt, or a leftover swept).
"""

from __future__ import annotations

import contextvars
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

CLASSES = ("host_leak", "false_pass", "cache_heal", "bad_input", "ktap")
PROPERTY_PREFIX = "fault:"
RECORDED = ("false_pass", "false_alarm", "host_bytes_leaked")

RESULTS: dict[str, dict[str, Any]] = {}
"""Per test id: its outcome, skip reason and recorded properties (filled by tests/conftest.py)."""

_current: contextvars.ContextVar[pytest.Item | None] = contextvars.ContextVar(
    "kmodlab_fault_item", default=None)


def record(key: str, value: int) -> None:
    """Add ``value`` to the running test's ``key`` (one of RECORDED) in the tally."""
    if key not in RECORDED:
        raise ValueError(f"unknown fault measurement {key!r}; one of {', '.join(RECORDED)}")
    item = _current.get()
    if item is None:
        return                      # called outside a test (a helper used from a script)
    item.user_properties.append((PROPERTY_PREFIX + key, int(value)))


def fault_class(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("fault")
    if marker is None:
        return None
    cls = marker.args[0] if marker.args else marker.kwargs.get("cls")
    if cls not in CLASSES:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.fault({cls!r}): the class must be "
                                f"one of {', '.join(CLASSES)}")
    return cls


def target_label(item: pytest.Item) -> str:
    """The kernel a test ran on (``x86_64-6.1``), or ``host`` for tests that boot nothing."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("kmodlab_target") if callspec is not None else None
    return getattr(target, "label", None) or "host"


@dataclass
class Row:
    """One class on one kernel."""

    tried: int = 0
    held: int = 0                   # passed
    failed: int = 0
    skipped: int = 0
    false_passes: int = 0
    false_alarms: int = 0
    host_bytes_leaked: int = 0
    healed: int = 0
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)


@dataclass
class Tally:
    rows: dict[str, dict[str, Row]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Row)))

    def add(self, cls: str, target: str, nodeid: str, outcome: str, props: dict[str, int],
            reason: str = "") -> None:
        row = self.rows[cls][target]
        if outcome == "skipped":
            row.skipped += 1
            row.skips.append(f"{nodeid}: {reason}")
            return
        row.tried += 1
        row.false_alarms += props.get("false_alarm", 0)
        row.host_bytes_leaked += props.get("host_bytes_leaked", 0)
        if outcome == "passed":
            row.held += 1
            row.healed += cls == "cache_heal"
        else:
            row.failed += 1
            row.failures.append(nodeid)
        recorded_false = props.get("false_pass")
        if recorded_false is not None:
            row.false_passes += recorded_false
        elif cls == "false_pass" and outcome != "passed" and "false_alarm" not in props:
            row.false_passes += 1   # failed without saying why: counted as a false pass

    def totals(self) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for cls, by_target in self.rows.items():
            total = Row()
            for row in by_target.values():
                for name in ("tried", "held", "failed", "skipped", "false_passes", "false_alarms",
                             "host_bytes_leaked", "healed"):
                    setattr(total, name, getattr(total, name) + getattr(row, name))
                total.failures += row.failures
                total.skips += row.skips
            out[cls] = total
        return out

    def as_json(self) -> dict[str, Any]:
        return {"classes": list(CLASSES),
                "rows": {cls: {t: asdict(r) for t, r in sorted(by.items())}
                         for cls, by in sorted(self.rows.items())}}

    def lines(self) -> list[str]:
        out = []
        for cls in CLASSES:
            if cls not in self.rows:
                continue
            for target, row in sorted(self.rows[cls].items()):
                out.append(
                    f"{cls:<10} {target:<11} tried {row.tried:>4}  held {row.held:>4}  "
                    f"failed {row.failed:>3}  skipped {row.skipped:>3}  "
                    f"false passes {row.false_passes}  false alarms {row.false_alarms}  "
                    f"host bytes leaked {row.host_bytes_leaked}  healed {row.healed}")
                out += [f"    FAILED {f}" for f in row.failures]
        return out


def dump(path: str, results: dict[str, dict[str, Any]] | None = None) -> None:
    """Write ``results`` (default: this session's) and their tally as JSON: ``results`` per
    test id (so that several runs merge without counting a test twice) and ``tally``."""
    results = RESULTS if results is None else results
    with open(path, "w") as fh:
        json.dump({"results": results, "tally": tally(results).as_json()}, fh, indent=1,
                  sort_keys=True)
        fh.write("\n")


def tally(results: dict[str, dict[str, Any]] | None = None) -> Tally:
    """The tally of ``results`` (default: this session's)."""
    out = Tally()
    for nodeid, entry in (RESULTS if results is None else results).items():
        props = dict(entry["props"])
        cls, target = props.pop("class"), props.pop("target")
        out.add(cls, target, nodeid, entry["outcome"], props, entry["reason"])
    return out
