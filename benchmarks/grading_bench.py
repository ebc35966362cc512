#!/usr/bin/env python3
"""Lab grading benchmark: prints figures, asserts nothing.

Grades a class of 20 mixed submissions of one sample lab (correct, wrong, leaking, crashing,
hanging, malicious, compile error) with ``kmodlab lab grade``'s engine, and reports:

* submissions per hour (wall clock): every submission differs, so each one is compiled (cold
  build cache); a regrade of the same class (warm cache) skips compilation;
* per outcome, the mean time a student costs, split into build / guest start / steps;
* the cost of a crash: a crash kills the guest, but every student starts from a pristine guest
  anyway, so a crash costs its own guest start (a snapshot restore) plus the time to detect it;
  the figure is the crash students' mean minus the correct students' mean.

Usage: .venv/bin/python benchmarks/grading_bench.py [--lab kmalloc_waste] [--arch x86_64] [--kernel 6.1]
       [--jobs 1] [--students 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from kmodlab.cliargs import add_target_options, target_of
from kmodlab.labs.classroom import grade_class
from kmodlab.labs.lab import load_lab
from kmodlab.paths import cache_dir

# 20 students: mostly correct work, as in a real class, plus one of each failure mode.
MIX = (["correct"] * 11 + ["wrong"] * 2 + ["leaking"] * 2 + ["crashing"] * 2 + ["hanging"]
       + ["malicious"] + ["syntax"])


def make_class(lab, root: Path, students: int) -> dict[str, str]:
    variants = {}
    subs = lab.path / "tests" / "submissions"
    for i in range(students):
        variant = MIX[i % len(MIX)]
        student = f"s{i:02d}-{variant}"
        dest = root / student
        if variant == "syntax":
            shutil.copytree(subs / "correct", dest)
            source = next(dest.glob("*.c"))
            source.write_text(source.read_text().replace(";", "", 3))
        else:
            shutil.copytree(subs / variant, dest)
        for source in dest.glob("*.c"):          # every student's code differs: real builds
            source.write_text(source.read_text() + f"/* {student} */\n")
        variants[student] = variant
    return variants


def run_once(lab, subs: Path, out: Path, target, jobs: int, prebuild: bool | None = True
             ) -> tuple[float, list]:
    t0 = time.monotonic()
    run = grade_class(lab, subs, out, targets=[target], jobs=jobs, regrade=True, progress=False,
                      prebuild=prebuild)
    return time.monotonic() - t0, run.results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", default="kmalloc_waste")
    add_target_options(ap)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--students", type=int, default=20)
    ap.add_argument("--shards", type=int, default=0, metavar="N",
                    help="also time the class as N shards graded one after the other (each a "
                         "runner's share) and print the arithmetic for N runners")
    args = ap.parse_args()
    lab = load_lab(args.lab)
    target = target_of(args)
    with tempfile.TemporaryDirectory(prefix="kmodlab-grading-bench-") as tmp:
        root = Path(tmp)
        variants = make_class(lab, root / "subs", args.students)
        shutil.rmtree(cache_dir("lab-builds"), ignore_errors=True)   # cold build cache
        serial, _ = run_once(lab, root / "subs", root / "out-serial", target, args.jobs,
                             prebuild=False)
        shutil.rmtree(cache_dir("lab-builds"), ignore_errors=True)
        cold, results = run_once(lab, root / "subs", root / "out-cold", target, args.jobs)
        warm, _ = run_once(lab, root / "subs", root / "out-warm", target, args.jobs)
        shard_times = []
        if args.shards > 1:
            from kmodlab.labs.shards import grade_shard

            shutil.rmtree(cache_dir("lab-builds"), ignore_errors=True)
            for i in range(1, args.shards + 1):
                t0 = time.monotonic()
                grade_shard(lab, root / "subs", root / f"shard{i}", i, args.shards,
                            targets=[target], jobs=args.jobs, regrade=True, progress=False)
                shard_times.append(time.monotonic() - t0)

    per_variant: dict[str, list] = defaultdict(list)
    for r in results:
        per_variant[variants[r.student]].append(r)
    n = len(results)
    print(f"lab {lab.id} on {target}, {n} submissions, jobs={args.jobs}")
    print(f"  build, then run:  {serial:7.1f} s  -> {3600 * n / serial:6.0f} submissions/hour "
          "(no prebuild, cold build cache)")
    print(f"  cold build cache: {cold:7.1f} s  -> {3600 * n / cold:6.0f} submissions/hour "
          "(the next builds overlap the current run)")
    print(f"  warm build cache: {warm:7.1f} s  -> {3600 * n / warm:6.0f} submissions/hour")
    print(f"  {'variant':10} {'n':>2} {'outcome':14} {'total s':>8} {'build':>6} "
          f"{'guest':>6} {'steps':>6}")
    means: dict[str, float] = {}
    for variant in dict.fromkeys(MIX):
        rows = per_variant.get(variant)
        if not rows:
            continue
        total = statistics.mean(r.seconds for r in rows)
        means[variant] = total
        secs = [r.targets[0].seconds for r in rows if r.targets]
        build = statistics.mean(s.get("build", 0.0) for s in secs)
        guest = statistics.mean(s.get("guest_start", 0.0) for s in secs)
        steps = statistics.mean(s.get("run", 0.0) - s.get("guest_start", 0.0) for s in secs)
        outcome = ",".join(sorted({r.outcome.value for r in rows}))
        print(f"  {variant:10} {len(rows):>2} {outcome:14} {total:8.2f} {build:6.2f} "
              f"{guest:6.2f} {steps:6.2f}")
    if "crashing" in means and "correct" in means:
        crash_rows = per_variant["crashing"]
        restore = statistics.mean(r.targets[0].seconds.get("guest_start", 0.0)
                                  for r in crash_rows)
        print(f"  cost of a crash: {means['crashing'] - means['correct']:+.2f} s over a correct "
              f"submission (its pristine guest restore: {restore:.2f} s, paid by every student)")
    if shard_times:
        slowest = max(shard_times)
        print(f"  {args.shards} shards, one after the other: "
              + ", ".join(f"{t:.1f} s" for t in shard_times)
              + f"; on {args.shards} runners the class takes the slowest shard, {slowest:.1f} s "
              f"-> {3600 * n / slowest:.0f} submissions/hour ({3600 * n / slowest / (3600 * n / cold):.2f}"
              f"x one runner)")
    if "hanging" in means and "correct" in means:
        print(f"  cost of a hang:  {means['hanging'] - means['correct']:+.2f} s (the lab's load "
              f"timeout is {lab.spec.timeouts.load:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
