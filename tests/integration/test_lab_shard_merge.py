"""Sharded grading, for real: a class of kmalloc_waste's synthetic submissions (one folder per
student) graded once whole (``kmodlab lab grade``) and once as two shards (``--shard 1/2`` and
``--shard 2/2``, each into its own folder), then ``kmodlab lab merge``: the merged class report
is the unsharded one, and a merge of shard 1 alone is refused with nothing written.

Everything is the CLI an instructor runs, on the lab's grading target (its ``grade_on``), with the
grader's build cache: the second grading of a submission reuses its build, as a regrade does;
the guest runs again, so the two reports come from two real gradings.  That fixes what may
differ between them (:func:`comparable`), read from labs/results.py, labs/reports.py and
labs/shards.py:

- ``graded_at`` (a timestamp; also class.csv's ``graded_at`` column and results.json's
  ``extra_data.graded_at``), ``seconds`` of a student and of each target, and results.json's
  ``execution_time``: timings and clocks;
- ``attempts`` (results.json's ``extra_data.attempts``): 2 when a harness error was retried at once
  (labs/grader.py); the retry's result is what is compared;
- the text a run quotes from its guest: a check's ``observed`` and ``message``, a target's
  ``crash``, ``console_tail`` and ``notes`` (and so results.json's test ``output``): kernel log
  lines carry printk timestamps (the crashing student's oops), and /proc/slabinfo counts of the
  shared kmalloc caches move with the kernel's own allocations between two runs from the same
  snapshot.  Each is compared by presence: both runs have it, or neither.

No field holds a host path (the build output is redacted to ``submission/``, the work folders
are deleted and never recorded), so nothing is ignored for paths, and the resume keys of
state.jsonl, which depend only on the lab, the submission and the targets, must be equal.
class.html and summary.json hold none of the fields above: they must be identical.

Cost: six students graded twice, none of them hanging (a hang costs up to the lab's 15 s load
timeout each time): four run in a guest (~1.5 s each on 2 cores under TCG, docs/labs.md's throughput
table), one crash (reported at once by the console watcher) and one refused at intake (no guest).
About half a minute, plus one cold boot of the lab's guest when no snapshot is cached: under two
minutes, so the ci tier keeps it (integration_tiers.ci_runs: an item without a matrix kernel runs
in both tiers).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from kmodlab.cli import main
from kmodlab.labs import load_lab
from kmodlab.labs.classroom import STATE_FILE, StateFile
from kmodlab.labs.lab import Lab
from kmodlab.labs.reports import student_folder
from kmodlab.labs.shards import SHARD_FILE, ShardRecord, shard_of

pytestmark = pytest.mark.integration

LAB = "kmalloc_waste"
SHARDS = 2
CLASS = {"alice": "correct", "bob": "correct", "carol": "wrong", "dave": "leaking",
         "erin": "crashing", "mallory": "malicious"}
"""Student -> the synthetic submission they hand in.  sha256 puts alice, dave and mallory in
shard 1 of 2, bob, carol and erin in shard 2: each shard has a pass and a failure
(test_each_student_is_in_exactly_one_shard checks the split is still so)."""

STUDENT_RUN_FIELDS = ("graded_at", "seconds", "attempts")
TARGET_RUN_FIELDS = ("seconds",)
TARGET_GUEST_TEXT = ("crash", "console_tail", "notes")
CHECK_GUEST_TEXT = ("observed", "message")
RESULTS_JSON_RUN_FIELDS = ("execution_time",)
RESULTS_JSON_EXTRA_RUN_FIELDS = ("graded_at", "attempts")
CSV_RUN_COLUMNS = ("graded_at",)


def kmodlab(*argv: str) -> tuple[int, str, str]:
    """The ``kmodlab`` command, in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The class, graded whole into ``whole/``, as shards into ``shard-1/`` and ``shard-2/``,
    and merged into ``merged/``."""
    lab = load_lab(LAB)
    work = tmp_path_factory.mktemp("shard-merge")
    subs = work / "submissions"
    for student, variant in CLASS.items():
        shutil.copytree(lab.path / "tests" / "submissions" / variant, subs / student)
    whole = work / "whole"
    status, out, err = kmodlab("lab", "grade", LAB, str(subs), "--out", str(whole),
                               "--no-progress")
    assert status == 0, out + err
    shards = []
    for index in range(1, SHARDS + 1):
        folder = work / f"shard-{index}"
        status, out, err = kmodlab("lab", "grade", LAB, str(subs), "--out", str(folder),
                                   "--shard", f"{index}/{SHARDS}", "--no-progress")
        assert status == 0, out + err
        assert "from a previous run: 0" in out, out     # graded here, not resumed
        shards.append(folder)
    merged = work / "merged"
    status, out, err = kmodlab("lab", "merge", LAB, *map(str, shards), "--out", str(merged))
    assert status == 0, out + err
    assert f"{len(CLASS)} student(s) from {SHARDS} shard(s) merged" in out, out
    return {"lab": lab, "work": work, "whole": whole, "shards": shards, "merged": merged}


# ------------------------------------------------------------------------------ what may differ
def _check(check: dict) -> dict:
    return {k: (bool(v) if k in CHECK_GUEST_TEXT else v) for k, v in check.items()}


def comparable(result: dict) -> dict:
    """A StudentResult's dict without what two real gradings may differ in (module doc)."""
    data = {k: v for k, v in result.items() if k not in STUDENT_RUN_FIELDS}
    data["checks"] = [_check(c) for c in result["checks"]]
    targets = []
    for target in result["targets"]:
        t = {k: (bool(v) if k in TARGET_GUEST_TEXT else v) for k, v in target.items()
             if k not in TARGET_RUN_FIELDS}
        t["checks"] = [_check(c) for c in target["checks"]]
        targets.append(t)
    data["targets"] = targets
    return data


def comparable_gradescope(data: dict) -> dict:
    """A results.json without its clock fields, each test's output by presence."""
    out = {k: v for k, v in data.items() if k not in RESULTS_JSON_RUN_FIELDS}
    out["tests"] = [{k: (bool(v) if k == "output" else v) for k, v in t.items()}
                    for t in data["tests"]]
    out["extra_data"] = {k: v for k, v in data["extra_data"].items()
                         if k not in RESULTS_JSON_EXTRA_RUN_FIELDS}
    return out


def csv_rows(folder: Path) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO((folder / "class.csv").read_text())))
    keep = [i for i, name in enumerate(rows[0]) if name not in CSV_RUN_COLUMNS]
    assert len(keep) == len(rows[0]) - len(CSV_RUN_COLUMNS), rows[0]
    return [[row[i] for i in keep] for row in rows]


def state(folder: Path) -> dict[str, tuple[str, dict]]:
    return {s: (key, result.to_dict())
            for s, (key, result) in StateFile(folder / STATE_FILE).load().items()}


# ------------------------------------------------------------------------------ the tests
def test_the_class_was_really_graded(graded: dict[str, object]) -> None:
    """Every student got what the lab declares for their submission (tests/expected.yaml), so
    the comparisons below are between real gradings, not between two harness errors."""
    lab = graded["lab"]
    assert isinstance(lab, Lab)
    declared = yaml.safe_load((lab.path / "tests" / "expected.yaml").read_text())
    whole = state(graded["whole"])                                    # type: ignore[arg-type]
    assert sorted(whole) == sorted(CLASS)
    outcomes = {s: result["outcome"] for s, (_, result) in whole.items()}
    assert outcomes == {s: declared[v]["outcome"] for s, v in CLASS.items()}


def test_each_student_is_in_exactly_one_shard(graded: dict[str, object]) -> None:
    lab = graded["lab"]
    assert isinstance(lab, Lab)
    shards = graded["shards"]
    assert isinstance(shards, list)
    records = [ShardRecord.read(folder) for folder in shards]
    assert [r.label for r in records] == [f"{i}/{SHARDS}" for i in range(1, SHARDS + 1)]
    whole = state(graded["whole"])                                    # type: ignore[arg-type]
    for record in records:
        assert (record.lab, record.lab_digest) == (lab.id, lab.digest)
        assert record.class_list == sorted(CLASS)
        mine = [s for s in sorted(CLASS) if shard_of(s, SHARDS) == record.index]
        assert record.shard_students == mine and mine, "each shard holds a part of the class"
        # the resume key of each result is the unsharded run's: same lab, submission, targets
        assert record.results == {s: whole[s][0] for s in mine}
    assert sorted(s for r in records for s in r.shard_students) == sorted(CLASS)


def test_the_merged_report_is_the_unsharded_one(graded: dict[str, object]) -> None:
    whole, merged = graded["whole"], graded["merged"]
    assert isinstance(whole, Path) and isinstance(merged, Path)
    assert sorted(p.name for p in merged.iterdir()) == sorted(p.name for p in whole.iterdir())
    assert not (merged / SHARD_FILE).exists()
    # the class reports
    assert (merged / "class.html").read_text() == (whole / "class.html").read_text()
    assert json.loads((merged / "summary.json").read_text()) == \
        json.loads((whole / "summary.json").read_text())
    assert csv_rows(merged) == csv_rows(whole)
    # every student: the same resume key, outcome, score and checks
    mine, theirs = state(merged), state(whole)
    assert sorted(mine) == sorted(theirs) == sorted(CLASS)
    for student in CLASS:
        key, result = mine[student]
        assert key == theirs[student][0], student
        assert (result["outcome"], result["score"]) == \
            (theirs[student][1]["outcome"], theirs[student][1]["score"]), student
        assert comparable(result) == comparable(theirs[student][1]), student
    # and the same files for each, the report and the Gradescope result saying the same
    for student in CLASS:
        a, b = student_folder(merged, student), student_folder(whole, student)
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        assert comparable(json.loads((a / "report.json").read_text())) == \
            comparable(json.loads((b / "report.json").read_text())), student
        if (b / "results.json").exists():
            assert comparable_gradescope(json.loads((a / "results.json").read_text())) == \
                comparable_gradescope(json.loads((b / "results.json").read_text())), student


def test_the_merge_takes_each_shard_result_unchanged(graded: dict[str, object]) -> None:
    """What the merge copies is byte for byte what its shard wrote (only the class reports are
    written anew), and its state.jsonl holds each shard's entries as they were."""
    merged, shards = graded["merged"], graded["shards"]
    assert isinstance(merged, Path) and isinstance(shards, list)
    mine = state(merged)
    for folder in shards:
        record = ShardRecord.read(folder)
        theirs = state(folder)
        for student in record.shard_students:
            assert files_of(student_folder(merged, student)) == \
                files_of(student_folder(folder, student)), student
            assert mine[student] == theirs[student], student


def test_the_merge_refuses_an_incomplete_set(graded: dict[str, object]) -> None:
    """Shard 1 alone: refused, naming the missing shard; nothing written, shard 1 untouched."""
    work, shards = graded["work"], graded["shards"]
    assert isinstance(work, Path) and isinstance(shards, list)
    first = shards[0]
    before = files_of(first)
    out = work / "merged-from-one-shard"
    status, stdout, err = kmodlab("lab", "merge", LAB, str(first), "--out", str(out))
    assert status == 2, stdout + err
    assert "cannot merge the shards; nothing was written" in err, err
    assert f"shard(s) 2/{SHARDS} missing" in err, err
    assert "lab grade" in err and "--shard I/N" in err, err      # says how to make it
    assert not out.exists()
    assert not list(work.glob(f".{out.name}.merging-*")), "no staging folder left behind"
    assert files_of(first) == before
