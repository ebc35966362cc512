"""``kmodlab lab ...``: author, hand out, verify, grade and self-check labs.

    kmodlab lab list
    kmodlab lab validate LAB
    kmodlab lab skel LAB --out DIR [--student ID]
    kmodlab lab verify LAB [--arch A ...] [--kernel K ...] [--students N]
    kmodlab lab grade LAB SUBMISSIONS --out REPORTS [--jobs N] [--arch A ...] [--kernel K ...] [--regrade]
        [--shard I/N]
    kmodlab lab merge LAB SHARD_DIR... --out REPORTS
    kmodlab lab selftest LAB [SUBMISSION] [--student ID] [--arch A --kernel K] [--json]
    kmodlab lab params LAB --student ID [--student ID ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab import registry
from kmodlab.cliargs import positive_int
from kmodlab.labs.errors import LabError
from kmodlab.registry import names

if TYPE_CHECKING:
    from kmodlab.registry import Target


def _targets(args: argparse.Namespace, lab) -> list[Target] | None:
    """``--arch``/``--kernel`` (each repeatable) as targets; None when neither is given (the
    lab's own choice).  A missing one means every arch (kernel) of the lab."""
    if not args.arch and not args.kernel:
        return None
    targets = registry.matrix(args.arch or lab.spec.arches, args.kernel or lab.spec.kernels)
    if not targets:
        raise LabError(f"no target of {lab.id} matches --arch {args.arch} --kernel {args.kernel}")
    return targets


def _score(value: float | None, max_score: float) -> str:
    return f"{'-' if value is None else f'{value:g}'}/{max_score:g}"


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def cmd_list(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from kmodlab.labs.lab import list_labs

    table = Table(title="labs")
    table.add_column("lab", no_wrap=True)
    for col in ("family", "title", "targets", "checks", "points"):
        table.add_column(col)
    for lab in list_labs():
        s = lab.spec
        table.add_row(escape(lab.id), s.family or "", escape(s.title),
                      f"{'/'.join(s.arches)} × {'/'.join(s.kernels)}", str(len(s.checks)),
                      f"{s.max_points:g}")
    _console().print(table)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from kmodlab.labs.lab import load_lab
    from kmodlab.labs.skeleton import skeleton_files

    lab = load_lab(args.lab)
    regions = []
    if lab.has_solution:
        _, regions = skeleton_files(lab)
    print(f"{lab.lab_file}: valid ({len(lab.spec.checks)} checks, {lab.spec.max_points:g} "
          f"points, {len(regions)} TODO region(s), targets "
          f"{', '.join(str(t) for t in lab.spec.targets)})")
    return 0


def cmd_skel(args: argparse.Namespace) -> int:
    from kmodlab.labs.lab import load_lab
    from kmodlab.labs.skeleton import write_pack

    lab = load_lab(args.lab)
    out = write_pack(lab, Path(args.out), args.student)
    print(f"starter pack for {lab.id} written to {out}")
    print(f"  students self-test with: kmodlab lab selftest {out} {out} --student ID")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from kmodlab.labs.lab import load_lab
    from kmodlab.labs.params import draw_parameters

    lab = load_lab(args.lab)
    for student in args.student:
        values = draw_parameters(lab.spec, lab.id, student)
        print(f"{student}: " + " ".join(f"{k}={v}" for k, v in values.items()))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from kmodlab.labs.lab import load_lab
    from kmodlab.labs.verify import verify_lab

    lab = load_lab(args.lab)
    console = _console()

    def show(row) -> None:
        sol, skel = row.solution, row.skeleton
        status = "[green]ok[/]" if row.ok else "[red]NOT SHIPPABLE[/]"
        console.print(f"{row.target} ({row.student}): solution {sol.outcome.label} "
                      f"{_score(sol.score, sol.max_score)}, skeleton {skel.outcome.label} "
                      f"{_score(skel.score, skel.max_score)}: {status}")
        for p in row.problems:
            console.print(f"    - {escape(p)}")

    rows = verify_lab(lab, _targets(args, lab), args.students, on_row=show)
    table = Table(title=f"verify {lab.id}")
    for col in ("target", "params", "solution", "skeleton", "verdict"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row.target),
                      " ".join(f"{k}={v}" for k, v in row.solution.params.items()),
                      _score(row.solution.score, row.solution.max_score),
                      _score(row.skeleton.score, row.skeleton.max_score),
                      "ok" if row.ok else "FAIL")
    console.print(table)
    ok = all(r.ok for r in rows)
    console.print(f"{lab.id}: {'shippable' if ok else 'NOT shippable'}")
    return 0 if ok else 1


def _shard(text: str) -> tuple[int, int]:
    """argparse type of ``--shard I/N`` (registry.parse_shard, as ``--kmodlab-shard``)."""
    from kmodlab.errors import ConfigError

    try:
        return registry.parse_shard(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_grade(args: argparse.Namespace) -> int:
    from kmodlab.labs.classroom import grade_class
    from kmodlab.labs.lab import load_lab

    lab = load_lab(args.lab)
    out = Path(args.out)
    options = {"targets": _targets(args, lab), "jobs": args.jobs, "regrade": args.regrade,
               "progress": not args.no_progress}
    if args.shard:
        from kmodlab.labs.shards import grade_shard

        index, count = args.shard
        run = grade_shard(lab, Path(args.submissions), out, index, count, **options)
        print(f"shard {index}/{count}: ", end="")
    else:
        run = grade_class(lab, Path(args.submissions), out, **options)
    counts: dict[str, int] = {}
    for r in run.results:
        counts[r.outcome.label] = counts.get(r.outcome.label, 0) + 1
    print(f"{len(run.results)} student(s): " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    print(f"graded now: {len(run.graded)}, from a previous run: {len(run.reused)}")
    if args.shard:
        print(f"shard folder: {out} (merge every shard with `kmodlab lab merge {args.lab} "
              f"SHARD_DIR... --out DIR`)")
    else:
        print(f"reports: {out / 'class.html'}, {out / 'class.csv'}, {out / 'students'}/")
    if run.harness_errors:
        print(f"{len(run.harness_errors)} harness error(s), not charged: rerun this command "
              "to retry them", file=sys.stderr)
    if run.interrupted:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    return 0 if not run.harness_errors else 3


def cmd_merge(args: argparse.Namespace) -> int:
    from kmodlab.labs.lab import load_lab
    from kmodlab.labs.shards import merge_shards

    lab = load_lab(args.lab)
    out = Path(args.out)
    results = merge_shards(lab, [Path(d) for d in args.shards], out)
    harness = [r.student for r in results if r.outcome.value == "harness_error"]
    print(f"{len(results)} student(s) from {len(args.shards)} shard(s) merged")
    print(f"reports: {out / 'class.html'}, {out / 'class.csv'}, {out / 'students'}/")
    if harness:
        print(f"{len(harness)} harness error(s), not charged: rerun the grade command of "
              "their shard to retry them, then merge again", file=sys.stderr)
    return 0 if not harness else 3


def cmd_selftest(args: argparse.Namespace) -> int:
    from kmodlab.labs.grader import GradeOptions, grade_submission
    from kmodlab.labs.lab import load_lab
    from kmodlab.labs.params import LOCAL_STUDENT
    from kmodlab.labs.reports import student_markdown
    from kmodlab.paths import cache_dir

    lab = load_lab(args.lab)
    student = args.student or LOCAL_STUDENT
    if not args.student and lab.spec.parameters and any(p.drawn for p in lab.spec.parameters.values()):
        print(f"note: no --student given; using the parameters of student id '{student}'",
              file=sys.stderr)
    if args.arch or args.kernel:
        first = lab.spec.grading_targets[0]
        targets = [registry.target(args.arch or first.arch, args.kernel or first.kernel)]
    else:
        targets = lab.spec.grading_targets
    options = GradeOptions(targets=targets, public_only=True, build_cache=cache_dir("lab-builds"))
    result = grade_submission(lab, Path(args.submission), student, options)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        from rich.markdown import Markdown

        text = student_markdown(lab, result, show_hidden=False)
        if sys.stdout.isatty():
            _console().print(Markdown(text))
        else:
            print(text)
    return 0 if result.outcome.value == "passed" else 1


def cmd_gradescope(args: argparse.Namespace) -> int:
    from kmodlab.labs.gradescope import cmd_gradescope as write_autograder

    return write_autograder(args)


def _matrix_options(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help=f"repeatable, one of {', '.join(names.arch_names())} (default: {default})")
    p.add_argument("--kernel", action="append", metavar="KERNEL",
                   help=f"repeatable, one of {', '.join(names.series_names())} "
                        f"(default: {default})")


def register(subparsers: argparse._SubParsersAction) -> None:
    lab = subparsers.add_parser("lab", help="instructor labs: skeleton, verify, grade, selftest")
    sub = lab.add_subparsers(dest="lab_command", required=True)

    p = sub.add_parser("list", help="the labs in labs/")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("validate", help="check a lab.yaml and its TODO markers (no guest)")
    p.add_argument("lab", help="lab name (labs/<name>) or folder")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("skel", help="write the student starter pack")
    p.add_argument("lab")
    p.add_argument("--out", required=True, help="new folder for the pack")
    p.add_argument("--student", help="put this student's parameters in the README")
    p.set_defaults(func=cmd_skel)

    p = sub.add_parser("params", help="show the parameters students get")
    p.add_argument("lab")
    p.add_argument("--student", action="append", required=True)
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("verify", help="solution scores full marks, skeleton compiles and scores "
                                      "low, on every kernel and arch (exit 1 if not)")
    p.add_argument("lab")
    _matrix_options(p, "every arch x kernel of the lab")
    p.add_argument("--students", type=int, default=1,
                   help="parameter draws to verify (default 1, at most 4)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("grade", help="grade every student folder of SUBMISSIONS")
    p.add_argument("lab")
    p.add_argument("submissions", help="folder with one sub-folder per student")
    p.add_argument("--out", required=True, help="reports folder (also the resume state)")
    _matrix_options(p, "the lab's grade_on")
    p.add_argument("--jobs", type=positive_int, default=1, help="students graded at once (default 1)")
    p.add_argument("--regrade", action="store_true", help="ignore the resume state")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="grade only shard I of N (split by a hash of the student id); the "
                        "folder also gets shard.json for `kmodlab lab merge`")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("merge", help="merge the folders of `lab grade --shard I/N` into one "
                                     "class report (refuses unless every student is there once)")
    p.add_argument("lab", help="the lab the shards were graded with (name or folder)")
    p.add_argument("shards", nargs="+", metavar="SHARD_DIR", help="the shards' --out folders")
    p.add_argument("--out", required=True, help="new (or empty) reports folder")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("selftest", help="a student's self-test: the public checks on your own "
                                        "solution")
    p.add_argument("lab", help="lab name, lab folder, or your starter pack")
    p.add_argument("submission", nargs="?", default=".", help="your files (default: .)")
    p.add_argument("--student", help="your student id (decides your parameters)")
    p.add_argument("--arch", help=f"one of {', '.join(names.arch_names())} "
                                  "(default: the lab's first grading target)")
    p.add_argument("--kernel", help=f"a series ({', '.join(names.series_names())}); "
                                    "default: the lab's first grading target")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_selftest)

    # Gradescope: the choices are kmodlab.labs.gradescope's (a unit test compares), written out
    # here because building the parser must not import the lab code.
    from kmodlab.cliargs import positive_seconds

    p = sub.add_parser("gradescope", help="write a Gradescope autograder zip for a lab "
                                          "(docs/gradescope.md)")
    p.add_argument("lab", help="lab name (labs/<name>) or folder")
    p.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    p.add_argument("--target", action="append", metavar="ARCH/SERIES",
                   help="repeatable: grade on this target, x86_64/6.1 or x86_64:6.1[:FLAVOUR] "
                        "(default: the lab's grade_on)")
    p.add_argument("--time-limit", type=positive_seconds, default=600.0, metavar="SECONDS",
                   help="the assignment's timeout on Gradescope: grading stops in time to write "
                        "partial results (default: %(default)g, Gradescope's default)")
    p.add_argument("--hidden-visibility", default="after_published",
                   choices=("hidden", "after_due_date", "after_published", "visible"),
                   help="when students see the lab's hidden checks (default: %(default)s)")
    p.add_argument("--student-id", default="email", choices=("email", "id"),
                   help="the Gradescope user field that draws a student's parameters "
                        "(default: %(default)s)")
    p.add_argument("--warm", default="solution", choices=("solution", "kernels"),
                   help="at image build: grade the reference solution on each target (fetches "
                        "the kernel, boots and snapshots the guest, proves the image grades), "
                        "or only fetch the kernels (default: %(default)s)")
    p.add_argument("--wheel", metavar="PATH",
                   help="ship this kmodlab wheel (default: build one from this source tree)")
    p.set_defaults(func=cmd_gradescope)
