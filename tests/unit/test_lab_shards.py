"""Sharded grading: the split is a partition that never moves a student, and merging the shards
gives the class report of one unsharded run, or refuses (writing nothing) when they do not fit.

No guest: results are synthetic, written with the real write_student_reports and StateFile, or
come from grade_class with grade_submission replaced (as in test_labs_classroom.py).  The class
reports (class.csv, class.html, summary.json) hold no time of their own, only each result's
graded_at, so merged and unsharded files are compared byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmodlab import cli
from kmodlab.labs import classroom, shards
from kmodlab.labs.classroom import STATE_FILE, StateFile
from kmodlab.labs.errors import LabError
from kmodlab.labs.lab import load_lab
from kmodlab.labs.reports import student_folder, write_class_reports, write_student_reports
from kmodlab.labs.results import CheckResult, Outcome, StudentResult, TargetResult
from kmodlab.labs.shards import ShardRecord, merge_shards, shard_of, split_class

LAB = load_lab("kmalloc_waste")
TARGETS = ["x86_64:6.1"]
CLASS = ["alice", "bob", "carol", "dave", "<eve>", "frank", "grace", "heidi", "ivan", "judy",
         "mallory o'neil", "zoë"]
CLASS_FILES = ("class.csv", "class.html", "summary.json")
OUTCOMES = (Outcome.PASSED, Outcome.FAILED, Outcome.CRASH, Outcome.COMPILE_ERROR, Outcome.HANG,
            Outcome.HARNESS_ERROR)


# ------------------------------------------------------------------------------ the split


def test_the_split_is_a_partition() -> None:
    students = [f"s{i:04d}" for i in range(500)] + CLASS
    for count in (1, 2, 3, 7):
        parts = [split_class(students, i, count) for i in range(1, count + 1)]
        flat = [s for part in parts for s in part]
        assert sorted(flat) == sorted(students), "every student in exactly one shard"
        assert len(flat) == len(set(flat))
        for i, part in enumerate(parts, 1):
            assert all(shard_of(s, count) == i for s in part)
            assert part == [s for s in students if s in set(part)], "class order is kept"
    sizes = [len(split_class(students, i, 4)) for i in range(1, 5)]
    assert min(sizes) > len(students) / 4 * 0.7, sizes     # a hash, so roughly even


def test_the_split_is_stable_when_students_are_added_or_leave() -> None:
    before = [f"s{i:03d}" for i in range(200)]
    # Half leave, 50 join, all sorting before everyone else: a split by position in the
    # sorted list would move nearly every student.
    after = sorted([*before[::2], *(f"aaa{i}" for i in range(50))])
    for count in (2, 5):
        for i in range(1, count + 1):
            old = set(split_class(before, i, count))
            new = set(split_class(after, i, count))
            assert old & set(after) == new & set(before), "nobody who stayed moved"


def test_the_split_refuses_a_bad_shard() -> None:
    for index, count in ((0, 2), (3, 2), (1, 0)):
        with pytest.raises(LabError, match="I/N"):
            split_class(CLASS, index, count)


# ------------------------------------------------------------------------------ synthetic shards


def _result(student: str, n: int) -> StudentResult:
    """A varied result: outcome, points, params and graded_at differ per student."""
    outcome = OUTCOMES[n % len(OUTCOMES)]
    checks = []
    for k, c in enumerate(LAB.spec.checks):
        ok = outcome is Outcome.PASSED or (outcome is Outcome.FAILED and k % 2 == 0)
        checks.append(CheckResult(c.name, c.kind, c.points, c.points if ok else 0.0,
                                  "passed" if ok else "failed", expected="x", observed=str(n)))
    score = None if outcome is Outcome.HARNESS_ERROR else sum(c.points for c in checks)
    return StudentResult(student, LAB.id, LAB.digest, f"{n:064x}", outcome, score,
                         LAB.spec.max_points, checks, [TargetResult(TARGETS[0], outcome, checks)],
                         params={"size": 32 + n, "count": 10}, graded_at=f"2025-01-{n + 1:02d}T10:00:00Z",
                         seconds=1.5 * n)


def make_shards(root: Path, count: int, students: list[str] = CLASS) -> list[Path]:
    """One folder per shard, as `lab grade --shard I/count` leaves it."""
    dirs = []
    for index in range(1, count + 1):
        folder = root / f"shard-{index}"
        folder.mkdir(parents=True)
        state = StateFile(folder / STATE_FILE)
        mine = split_class(students, index, count)
        keys = {}
        for student in mine:
            result = _result(student, students.index(student))
            write_student_reports(LAB, result, student_folder(folder, student))
            keys[student] = f"key-{student}"
            state.append(keys[student], result)
        ShardRecord(lab=LAB.id, lab_digest=LAB.digest, targets=TARGETS, index=index,
                    count=count, class_list=list(students), shard_students=mine,
                    results=keys).write(folder)
        dirs.append(folder)
    return dirs


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_merging_gives_the_class_reports_of_all_results(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    assert all(json.loads((d / "shard.json").read_text())["shard_students"] for d in dirs), \
        "both shards hold students"
    out = tmp_path / "merged"
    merged = merge_shards(LAB, dirs, out)
    everyone = [_result(s, n) for n, s in enumerate(CLASS)]
    reference = tmp_path / "reference"
    write_class_reports(LAB, everyone, reference)
    for student in everyone:
        write_student_reports(LAB, student, student_folder(reference, student.student))
    assert [r.student for r in merged] == CLASS
    for name in CLASS_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    ours = {k: v for k, v in _files(out).items() if k != STATE_FILE}
    assert ours == _files(reference), "the same files, student folders included"
    state = StateFile(out / STATE_FILE).load()
    assert {s: (k, r.to_dict()) for s, (k, r) in state.items()} == \
        {r.student: (f"key-{r.student}", r.to_dict()) for r in everyone}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no staging left"


def test_shard_order_on_the_command_line_does_not_matter(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 3)
    merge_shards(LAB, dirs, tmp_path / "a")
    merge_shards(LAB, dirs[::-1], tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


# ------------------------------------------------------------------------------ refusals


def _edit(folder: Path, **changes: object) -> None:
    path = folder / "shard.json"
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _refused(tmp_path: Path, dirs: list[Path], match: str) -> None:
    out = tmp_path / "deep" / "merged"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LabError, match=match) as err:
        merge_shards(LAB, dirs, out)
    assert "nothing was written" in str(err.value) or "merge into" in str(err.value) \
        or "shard folder" in str(err.value)
    assert not out.exists() and not out.parent.exists(), "nothing written"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_refuses_shards_of_another_lab(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    _edit(dirs[1], lab="slab_cache")
    _refused(tmp_path, dirs, "graded with lab 'slab_cache', not 'kmalloc_waste'")


def test_refuses_shards_of_another_lab_version(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    _edit(dirs[0], lab_digest="0" * 64)
    _refused(tmp_path, dirs, "another version of lab kmalloc_waste")


def test_refuses_shards_graded_on_other_targets(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    _edit(dirs[1], targets=["arm64:6.1"])
    _refused(tmp_path, dirs, "graded on arm64:6.1")


def test_refuses_shards_cut_with_another_n(tmp_path: Path) -> None:
    two = make_shards(tmp_path / "two", 2)
    three = make_shards(tmp_path / "three", 3)
    _refused(tmp_path, [two[0], three[1], three[2]], "the same N")


def test_refuses_a_missing_shard(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 3)
    _refused(tmp_path, [dirs[0], dirs[2]], r"shard\(s\) 2/3 missing")


def test_refuses_a_repeated_shard(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    _refused(tmp_path, [dirs[0], dirs[1], dirs[1]], "shard 2/2 given more than once")


def test_refuses_a_student_in_two_shards(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    one = json.loads((dirs[0] / "shard.json").read_text())
    two = json.loads((dirs[1] / "shard.json").read_text())
    moved = one["shard_students"][0]
    _edit(dirs[1], shard_students=[*two["shard_students"], moved], results={**two["results"], moved: "k"})
    StateFile(dirs[1] / STATE_FILE).append("k", _result(moved, 0))
    _refused(tmp_path, dirs, f"student '{moved}' is in shards 1/2, 2/2")


def test_refuses_a_student_without_a_result(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    record = json.loads((dirs[0] / "shard.json").read_text())
    lost = record["shard_students"][-1]
    del record["results"][lost]                 # an interrupted run: graded by nobody
    (dirs[0] / "shard.json").write_text(json.dumps(record))
    _refused(tmp_path, dirs, rf"1 student\(s\) of shard 1/2 have no result \('{lost}'\)")


def test_refuses_a_result_the_state_does_not_hold(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    lines = (dirs[1] / STATE_FILE).read_text().splitlines()
    (dirs[1] / STATE_FILE).write_text("\n".join(lines[1:]) + "\n")
    _refused(tmp_path, dirs, "of shard 2/2 have no result")


def test_refuses_a_stale_result(tmp_path: Path) -> None:
    """The state's last line for a student must be the result the shard run recorded."""
    dirs = make_shards(tmp_path, 2)
    record = json.loads((dirs[0] / "shard.json").read_text())
    student = record["shard_students"][0]
    StateFile(dirs[0] / STATE_FILE).append("an-older-key", _result(student, 0))
    _refused(tmp_path, dirs, "of shard 1/2 have no result")


def test_refuses_shards_of_another_class(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    record = json.loads((dirs[1] / "shard.json").read_text())
    _edit(dirs[1], class_list=[*record["class_list"], "newcomer"])
    _refused(tmp_path, dirs, r"another class list .*'newcomer'")


def test_refuses_a_folder_that_is_no_shard_and_an_output_in_use(tmp_path: Path) -> None:
    dirs = make_shards(tmp_path, 2)
    (tmp_path / "plain").mkdir()
    _refused(tmp_path, [dirs[0], tmp_path / "plain"], "no shard.json")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "old.txt").write_text("x")
    with pytest.raises(LabError, match="not empty"):
        merge_shards(LAB, dirs, tmp_path / "busy")
    empty = tmp_path / "empty"
    empty.mkdir()
    merge_shards(LAB, dirs, empty)               # an empty folder is fine
    assert (empty / "class.csv").is_file()


# ------------------------------------------------------------------------------ end to end


@pytest.fixture
def fake_grading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """grade_submission without guests: the outcome comes from a file in the submission."""
    calls: list[str] = []
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))

    def fake(lab, folder, student, options):  # type: ignore[no-untyped-def]
        calls.append(student)
        outcome = Outcome((folder / "outcome").read_text().strip())
        passed = outcome is Outcome.PASSED
        checks = [CheckResult(c.name, c.kind, c.points, c.points if passed else 0,
                              "passed" if passed else "failed") for c in lab.spec.checks]
        score = None if outcome is Outcome.HARNESS_ERROR else sum(c.points for c in checks)
        return StudentResult(student, lab.id, lab.digest, "d", outcome, score,
                             lab.spec.max_points, checks,
                             [TargetResult(str(options.targets[0]), outcome, checks)],
                             graded_at=f"at-{student}")

    monkeypatch.setattr(classroom, "grade_submission", fake)
    monkeypatch.setattr(classroom, "kernel_for", lambda target, cache: None)
    monkeypatch.setattr(classroom, "require_jail", lambda kernel: None)
    return calls


def _submissions(root: Path) -> Path:
    for n, student in enumerate(CLASS):
        folder = root / student
        folder.mkdir(parents=True)
        (folder / "waste.c").write_text(f"/* {student} */\n")
        (folder / "outcome").write_text(OUTCOMES[n % 5].value)      # no harness error
    return root


def test_graded_shards_merge_into_the_unsharded_run(fake_grading: list[str],
                                                    tmp_path: Path) -> None:
    subs = _submissions(tmp_path / "subs")
    full = tmp_path / "full"
    classroom.grade_class(LAB, subs, full, progress=False)
    fake_grading.clear()
    dirs = []
    for index in (1, 2, 3):
        folder = tmp_path / f"shard{index}"
        run = shards.grade_shard(LAB, subs, folder, index, 3, progress=False)
        assert [r.student for r in run.results] == split_class(sorted(CLASS), index, 3)
        record = ShardRecord.read(folder)
        assert (record.index, record.count, record.class_list) == (index, 3, sorted(CLASS))
        assert record.shard_students == split_class(sorted(CLASS), index, 3)
        assert record.targets == TARGETS
        assert sorted(record.results) == sorted(record.shard_students)
        dirs.append(folder)
    assert sorted(fake_grading) == sorted(CLASS), "each student graded once, in one shard"
    assert [s for s, _ in classroom.student_folders(subs)] == sorted(CLASS), \
        "grade_class's folder lister is put back"
    out = tmp_path / "merged"
    merge_shards(LAB, dirs, out)
    for name in CLASS_FILES:
        assert (out / name).read_bytes() == (full / name).read_bytes(), name
    assert {k: v for k, v in _files(out).items() if k != STATE_FILE} == \
        {k: v for k, v in _files(full).items() if k != STATE_FILE}
    assert {s: (k, r.to_dict()) for s, (k, r) in StateFile(out / STATE_FILE).load().items()} == \
        {s: (k, r.to_dict()) for s, (k, r) in StateFile(full / STATE_FILE).load().items()}, \
        "the same resume keys: an unsharded rerun on the merged folder regrades nobody"
    fake_grading.clear()
    rerun = classroom.grade_class(LAB, subs, out, progress=False)
    assert fake_grading == [] and len(rerun.reused) == len(CLASS)


def test_a_shard_resumes_and_records_only_what_it_finished(fake_grading: list[str],
                                                          tmp_path: Path) -> None:
    import threading

    subs = _submissions(tmp_path / "subs")
    mine = split_class(CLASS, 1, 2)
    assert len(mine) >= 2
    stop = threading.Event()
    run = shards.grade_shard(LAB, subs, tmp_path / "s1", 1, 2, progress=False, stop=stop,
                             on_result=lambda r: stop.set())
    assert run.interrupted and len(run.results) == 1
    assert list(ShardRecord.read(tmp_path / "s1").results) == [run.results[0].student]
    shards.grade_shard(LAB, subs, tmp_path / "s2", 2, 2, progress=False)
    with pytest.raises(LabError, match="have no result"):
        merge_shards(LAB, [tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")
    fake_grading.clear()
    shards.grade_shard(LAB, subs, tmp_path / "s1", 1, 2, progress=False)
    assert sorted(fake_grading) == sorted(mine[1:]), "the rerun resumes"
    merge_shards(LAB, [tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")


def test_a_failed_rerun_leaves_no_record_behind(fake_grading: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The old shard.json would vouch for results the new run never reached."""
    from kmodlab.labs.jail import JailError

    subs = _submissions(tmp_path / "subs")
    shards.grade_shard(LAB, subs, tmp_path / "s1", 1, 2, progress=False)
    assert (tmp_path / "s1" / "shard.json").is_file()

    def no_jail(kernel: object) -> None:
        raise JailError("bwrap is not installed")

    monkeypatch.setattr(classroom, "require_jail", no_jail)
    with pytest.raises(JailError):
        shards.grade_shard(LAB, subs, tmp_path / "s1", 1, 2, progress=False)
    assert not (tmp_path / "s1" / "shard.json").exists()


def test_an_empty_shard_provisions_nothing(fake_grading: list[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "waste.c").write_text("")
    (subs / "alice" / "outcome").write_text("passed")
    empty = next(i for i in (1, 2) if not split_class(["alice"], i, 2))
    monkeypatch.setattr(classroom, "kernel_for", lambda t, c: pytest.fail("provisioned"))
    run = shards.grade_shard(LAB, subs, tmp_path / "empty", empty, 2, progress=False)
    assert run.results == [] and ShardRecord.read(tmp_path / "empty").shard_students == []


def test_the_commands(fake_grading: list[str], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    subs = _submissions(tmp_path / "subs")
    for index in (1, 2):
        argv = ["lab", "grade", "kmalloc_waste", str(subs), "--out", str(tmp_path / f"s{index}"),
                "--shard", f"{index}/2", "--no-progress"]
        assert cli.main(argv) == 0
        assert f"shard {index}/2: " in capsys.readouterr().out
    merge = ["lab", "merge", "kmalloc_waste", str(tmp_path / "s1"), str(tmp_path / "s2"),
             "--out", str(tmp_path / "merged")]
    assert cli.main(merge) == 0
    assert f"{len(CLASS)} student(s) from 2 shard(s) merged" in capsys.readouterr().out
    assert cli.main([*merge[:-3], "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "kmodlab: error: cannot merge" in err and "2/2 missing" in err
    assert not (tmp_path / "again").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["lab", "grade", "kmalloc_waste", str(subs), "--out", "x", "--shard", "3/2"])
    assert exc.value.code == 2 and "1 <= I <= N" in capsys.readouterr().err
