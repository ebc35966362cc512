"""Sharded grading: one class graded across N machines, merged into one class report.

    kmodlab lab grade LAB SUBMISSIONS --out shard-1 --shard 1/3     # on three CI runners
    kmodlab lab merge LAB shard-1 shard-2 shard-3 --out reports     # once, afterwards

A student's shard is the SHA-256 of their id modulo N (as ``--kmodlab-shard`` splits tests), not
their place in a sorted list: adding or removing a student never moves anyone else, and every
student is in exactly one shard.  A shard's folder is an ordinary ``lab grade`` folder
(``state.jsonl``, ``students/<id>/``) plus ``shard.json``, which records the lab, its digest, the
targets, I and N, the whole class list it was cut from and the state key of every result, so
that the merge can prove it has every student of the class exactly once, graded with the same
lab on the same kernels, before it writes anything.  The merge then writes the class reports
with :func:`~kmodlab.labs.reports.write_class_reports` over the results in the order an unsharded
run uses, so they are the files that run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmodlab.labs.errors import LabError

if TYPE_CHECKING:
    from kmodlab.labs.classroom import ClassRun
    from kmodlab.labs.lab import Lab
    from kmodlab.labs.results import StudentResult
    from kmodlab.labs.schema import Target

SHARD_FILE = "shard.json"
SHARD_FORMAT = 1
_SHOWN = 10          # students named in one error message before "and N more"


# ------------------------------------------------------------------------------ the split
def shard_of(student: str, count: int) -> int:
    """The 1-based shard of ``student`` among ``count``: a hash of the id alone, so the shard
    of a student never depends on who else is in the class."""
    digest = hashlib.sha256(student.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest, "big") % count + 1


def split_class(students: Iterable[str], index: int, count: int) -> list[str]:
    """The students of shard ``index`` of ``count``, in the order given."""
    if not 1 <= index <= count:
        raise LabError(f"bad shard {index}/{count}; write I/N with 1 <= I <= N, e.g. 2/4")
    return [s for s in students if shard_of(s, count) == index]


# ------------------------------------------------------------------------------ shard.json
@dataclass
class ShardRecord:
    """What ``shard.json`` holds: enough for the merge to prove the shards fit together."""

    lab: str
    lab_digest: str
    targets: list[str]
    index: int
    count: int
    class_list: list[str]               # the whole class, in grading order
    shard_students: list[str]           # this shard's
    results: dict[str, str] = field(default_factory=dict)    # student -> state key
    format: int = SHARD_FORMAT

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def write(self, folder: Path) -> Path:
        path = folder / SHARD_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, folder: Path) -> ShardRecord:
        path = folder / SHARD_FILE
        if not folder.is_dir():
            raise LabError(f"{folder} is not a folder")
        try:
            data: Any = json.loads(path.read_text())
        except OSError:
            raise LabError(f"{folder} is not a shard folder: it has no {SHARD_FILE} (write one "
                           "with `kmodlab lab grade LAB SUBMISSIONS --out DIR --shard I/N`)") from None
        except ValueError as exc:
            raise LabError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
            raise LabError(f"{path}: not a shard record of format {SHARD_FORMAT}; grade the "
                           "shard again with this kmodlab")
        try:
            record = cls(**data)
        except TypeError as exc:
            raise LabError(f"{path}: malformed shard record ({exc})") from None
        if not (isinstance(record.class_list, list) and isinstance(record.shard_students, list)
                and isinstance(record.results, dict) and isinstance(record.targets, list)
                and isinstance(record.index, int) and isinstance(record.count, int)):
            raise LabError(f"{path}: malformed shard record")
        return record


# ------------------------------------------------------------------------------ grading
def grade_shard(lab: Lab, submissions: Path, out: Path, index: int, count: int, *,
                targets: list[Target] | None = None, **options: Any) -> ClassRun:
    """Grade shard ``index`` of ``count`` of ``submissions`` into ``out`` (with
    :func:`~kmodlab.labs.classroom.grade_class`, so it resumes the same way) and write
    ``shard.json``; also after an interruption, so the merge can name what is missing."""
    from kmodlab.labs import classroom

    targets = targets or lab.spec.grading_targets
    folders = classroom.student_folders(submissions)
    mine = set(split_class([s for s, _ in folders], index, count))
    chosen = [(s, f) for s, f in folders if s in mine]
    out.mkdir(parents=True, exist_ok=True)
    # A record left by an earlier run would vouch for results this run may not reach.
    (out / SHARD_FILE).unlink(missing_ok=True)
    if chosen:
        # the original folders, graded in place: resume keys and submission digests are an
        # unsharded run's
        run = classroom.grade_class(lab, submissions, out, targets=targets,
                                    only=frozenset(s for s, _ in chosen), **options)
    else:
        run = classroom.ClassRun()    # no kernels to provision for an empty shard
    state = classroom.StateFile(out / classroom.STATE_FILE).load()
    keys = {r.student: state[r.student][0] for r in run.results if r.student in state}
    ShardRecord(lab=lab.id, lab_digest=lab.digest, targets=[str(t) for t in targets],
                index=index, count=count, class_list=[s for s, _ in folders],
                shard_students=[s for s, _ in chosen], results=keys).write(out)
    return run


# ------------------------------------------------------------------------------ merging
def _names(items: Sequence[str]) -> str:
    shown = ", ".join(repr(s) for s in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _refuse(problems: list[str]) -> None:
    if problems:
        raise LabError("cannot merge the shards; nothing was written:\n  - " +
                       "\n  - ".join(problems))


def _check_identity(lab: Lab, shards: list[tuple[Path, ShardRecord]]) -> None:
    """Same lab, lab version, targets, N and class list in every shard."""
    problems = []
    first_dir, first = shards[0]
    for folder, rec in shards:
        if rec.lab != lab.id:
            problems.append(f"{folder}: graded with lab {rec.lab!r}, not {lab.id!r}")
        elif rec.lab_digest != lab.digest:
            problems.append(f"{folder}: graded with another version of lab {lab.id} (digest "
                            f"{rec.lab_digest[:12]}, this lab {lab.digest[:12]}); regrade it "
                            "or merge with the lab it was graded with")
        if rec.targets != first.targets:
            problems.append(f"{folder}: graded on {', '.join(rec.targets) or '-'}, but "
                            f"{first_dir} on {', '.join(first.targets) or '-'}")
        if rec.count != first.count:
            problems.append(f"{folder}: is shard {rec.label}, but {first_dir} is shard "
                            f"{first.label}: every shard must be cut with the same N")
        elif not 1 <= rec.index <= rec.count:
            problems.append(f"{folder}: shard {rec.label} is not a shard of {rec.count}")
        if rec.class_list != first.class_list:
            only = sorted(set(rec.class_list) ^ set(first.class_list))
            problems.append(f"{folder}: cut from another class list than {first_dir}"
                            + (f" (students in only one: {_names(only)})" if only else
                               " (the same students, in another order)"))
    _refuse(problems)


def _check_partition(shards: list[tuple[Path, ShardRecord]]) -> None:
    """Every shard index once, every student of the class in exactly one shard."""
    problems = []
    count = shards[0][1].count
    seen = Counter(rec.index for _, rec in shards)
    for index in sorted(i for i, n in seen.items() if n > 1):
        dirs = ", ".join(str(d) for d, rec in shards if rec.index == index)
        problems.append(f"shard {index}/{count} given more than once: {dirs}")
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        problems.append(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: grade "
                        "them with `kmodlab lab grade LAB SUBMISSIONS --out DIR --shard I/N` "
                        "and pass their folders too")
    owner: dict[str, list[str]] = {}
    for _, rec in shards:
        for student in rec.shard_students:
            owner.setdefault(student, []).append(rec.label)
    twice = [s for s, labels in owner.items() if len(labels) > 1]
    for student in twice[:_SHOWN]:
        problems.append(f"student {student!r} is in shards {', '.join(owner[student])}")
    if len(twice) > _SHOWN:
        problems.append(f"and {len(twice) - _SHOWN} more student(s) in two shards")
    for folder, rec in shards:
        if sorted(rec.shard_students) != sorted(split_class(rec.class_list, rec.index, rec.count)):
            problems.append(f"{folder}: shard {rec.label} lists other students than the split "
                            "of its class list gives it")
    if not missing:
        nowhere = [s for s in shards[0][1].class_list if s not in owner]
        if nowhere:
            problems.append(f"student(s) of the class in no shard: {_names(nowhere)}")
    _refuse(problems)


def _collect(shards: list[tuple[Path, ShardRecord]]
             ) -> dict[str, tuple[str, StudentResult, Path]]:
    """Every student's (state key, result, report folder), or one error naming who has none."""
    from kmodlab.labs.classroom import STATE_FILE, StateFile
    from kmodlab.labs.reports import student_folder

    found: dict[str, tuple[str, StudentResult, Path]] = {}
    problems = []
    for folder, rec in shards:
        state = StateFile(folder / STATE_FILE).load()
        lacking = []
        for student in rec.shard_students:
            key = rec.results.get(student)
            entry = state.get(student)
            reports = student_folder(folder, student)
            if key is None or entry is None or entry[0] != key or not reports.is_dir():
                lacking.append(student)
                continue
            found[student] = (key, entry[1], reports)
        if lacking:
            problems.append(f"{folder}: {len(lacking)} student(s) of shard {rec.label} have no "
                            f"result ({_names(lacking)}): its grading was interrupted or failed; "
                            f"rerun its `kmodlab lab grade ... --shard {rec.label}` (it resumes) "
                            "and merge again")
    _refuse(problems)
    return found


def _check_out(out: Path, shard_dirs: Sequence[Path]) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LabError(f"{out} exists and is not empty; merge into a new (or empty) folder")
    for folder in shard_dirs:
        if folder.resolve() == out.resolve():
            raise LabError(f"{out} is one of the shard folders; merge into a new folder")


def merge_shards(lab: Lab, shard_dirs: Sequence[Path], out: Path) -> list[StudentResult]:
    """Merge the shard folders into ``out``: ``state.jsonl``, ``students/<id>/`` and the class
    reports an unsharded run writes.  Everything is checked before anything is written (a
    :class:`LabError` lists what does not fit), and ``out`` appears whole or not at all."""
    from kmodlab.labs.classroom import STATE_FILE, StateFile
    from kmodlab.labs.reports import student_folder, write_class_reports

    if not shard_dirs:
        raise LabError("no shard folders to merge")
    dirs = [Path(d) for d in shard_dirs]
    _check_out(out, dirs)
    shards = [(d, ShardRecord.read(d)) for d in dirs]
    _check_identity(lab, shards)
    _check_partition(shards)
    found = _collect(shards)
    order = shards[0][1].class_list          # student_folders' order, as grade_class reports it
    results = [found[s][1] for s in order]

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.merging-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        state = StateFile(staging / STATE_FILE)
        for student in order:
            key, result, reports = found[student]
            state.append(key, result)
            shutil.copytree(reports, student_folder(staging, student))
        write_class_reports(lab, results, staging)
        if out.exists():
            out.rmdir()                    # checked empty above
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return results
