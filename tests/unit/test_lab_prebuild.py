"""The prebuilder: compiles the next students while the grader runs the current one, never more
than AHEAD ahead, never fetching a kernel, never failing the run (builds faked: no jail)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from kmodlab.labs import sandbox
from kmodlab.labs.lab import load_lab
from kmodlab.labs.prebuild import AHEAD, Prebuilder
from kmodlab.registry.target import Target

LAB = load_lab("kmalloc_waste")
TARGET = LAB.spec.lab_target(Target("x86_64", "6.1"))


class FakeKernel:
    arch, series, version, release, label = "x86_64", "6.1", (6, 1), "6.1.0-57-cloud-amd64", \
        "x86_64-6.1"


def students(tmp_path: Path, n: int) -> list[tuple[str, Path]]:
    out = []
    for i in range(n):
        folder = tmp_path / f"s{i}"
        folder.mkdir()
        (folder / "waste.c").write_text(f"/* student {i} */\n")
        out.append((f"s{i}", folder))
    return out


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def fake_build(lab, intake, kernel, env, work, cache):  # type: ignore[no-untyped-def]
        seen.append(str(env["student"]))
        return sandbox.BuildOutcome(None, "", 0.0)

    monkeypatch.setattr(sandbox, "build_submission", fake_build)
    monkeypatch.setattr("kmodlab.labs.grader.model_for", lambda lab, kernel: _Model())
    monkeypatch.setattr("kmodlab.labs.grader.base_env",
                        lambda lab, kernel, params, student, model: {"student": student})
    return seen


class _Model:
    PAGE_SIZE = 4096


def _wait(cond, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)


def test_it_stays_at_most_ahead_of_the_grader(tmp_path: Path, builds: list[str]) -> None:
    queue = students(tmp_path, 6)
    with Prebuilder(LAB, queue, [TARGET], {TARGET.label: FakeKernel()}, tmp_path / "c") as pre:
        _wait(lambda: len(builds) == AHEAD)
        time.sleep(0.1)
        assert builds == ["s0", "s1"][:AHEAD]          # no further until the grader moves on
        pre.done()
        _wait(lambda: len(builds) == AHEAD + 1)
        assert builds[-1] == f"s{AHEAD}"
        for _ in range(10):
            pre.done()
        _wait(lambda: len(builds) == 6)
    assert builds == [s for s, _ in queue]


def test_it_never_fetches_a_kernel(tmp_path: Path, builds: list[str]) -> None:
    with Prebuilder(LAB, students(tmp_path, 2), [TARGET], {}, tmp_path / "c") as pre:
        for _ in range(4):
            pre.done()
    assert builds == []


def test_a_submission_it_cannot_build_is_left_to_the_grader(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           builds: list[str]) -> None:
    queue = students(tmp_path, 3)
    (queue[0][1] / "waste.c").unlink()                # rejected at intake: skipped, no raise
    with Prebuilder(LAB, queue, [TARGET], {TARGET.label: FakeKernel()}, tmp_path / "c") as pre:
        for _ in range(4):
            pre.done()
        _wait(lambda: len(builds) == 2)
    assert builds == ["s1", "s2"] and pre.built == ["s1", "s2"]


def test_stop_ends_the_thread_promptly(tmp_path: Path, builds: list[str]) -> None:
    pre = Prebuilder(LAB, students(tmp_path, 50), [TARGET], {TARGET.label: FakeKernel()},
                     tmp_path / "c").__enter__()
    t0 = time.monotonic()
    pre.stop()
    assert time.monotonic() - t0 < 5 and len(builds) <= AHEAD
    assert not any(t.name == "kmodlab-prebuild" and t.is_alive() for t in threading.enumerate())
