"""Shared test configuration: the fault tally (see tests/faultzoo.py).

Tests that demonstrate a Trust fault carry ``@pytest.mark.fault(CLASS)``; at the end of a run
the terminal summary shows what they found per class and kernel, and ``KMODLAB_ZOO_REPORT=PATH``
also writes it as JSON (``scripts/fault-zoo`` turns that into the README's table).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import faultzoo
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault(cls): the test tries a Trust fault of class cls, one of "
                   f"{', '.join(faultzoo.CLASSES)} (tallied at the end of the run)")
    faultzoo.RESULTS.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Generator[None, object, object]:
    cls = faultzoo.fault_class(item)
    if cls is None:
        return (yield)
    # Carried in the reports, so that the tally is right under pytest-xdist too.
    item.user_properties += [(faultzoo.PROPERTY_PREFIX + "class", cls),
                             (faultzoo.PROPERTY_PREFIX + "target", faultzoo.target_label(item))]
    token = faultzoo._current.set(item)
    try:
        return (yield)
    finally:
        faultzoo._current.reset(token)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Each report carries every property recorded so far (setup, call, teardown in turn).
    measured: dict[str, int | str] = {}
    for key, value in report.user_properties:
        if not (isinstance(key, str) and key.startswith(faultzoo.PROPERTY_PREFIX)):
            continue
        name = key[len(faultzoo.PROPERTY_PREFIX):]
        if name in ("class", "target"):
            measured[name] = value
        else:
            measured[name] = int(measured.get(name, 0)) + int(value)
    if "class" not in measured:
        return
    entry = faultzoo.RESULTS.setdefault(report.nodeid,
                                        {"outcome": "passed", "reason": "", "props": {}})
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        longrepr = report.longrepr
        entry["reason"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    entry["props"] = measured


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not faultzoo.RESULTS:
        return
    result = faultzoo.tally()
    terminalreporter.section("fault tally (tests/faultzoo.py)")
    for line in result.lines():
        terminalreporter.write_line(line)
    path = os.environ.get("KMODLAB_ZOO_REPORT")
    if path:
        faultzoo.dump(path)
        terminalreporter.write_line(f"written to {path}")
