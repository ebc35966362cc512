#!/usr/bin/env python3
"""False-alarm rate of the leak detector (kmodlab.leaks): prints figures, asserts nothing.

Modules that free everything they allocate must never be reported as leaking:

* every allocator family (kmalloc, kmem_cache, mempool, vmalloc, percpu, devres, pages), built
  with its default parameters (``kmodlab.modules.build(parse_params(family, []))``) and run
  with :func:`kmodlab.runner.run_module`: ``--runs`` runs per family and kernel, spread over
  ``--guests`` fresh guests (each restored from the snapshot, as ``kmodlab run`` starts one);
  a false report is a run whose unload the detector judged not clean;
* every sample lab's reference solution (``labs/*/solution``), graded as ``kmodlab lab verify``
  grades it (:func:`kmodlab.labs.grader.grade_submission`, one fresh guest per grading, the
  parameters of a different student each time): a false report is a failed ``no_leaks`` or
  ``cache_destroyed`` check, or a ``leak check:`` note of the engine's detector.

For each it also prints the largest measured value of every judged quantity next to its
tolerance (the headroom), and how many runs the detector had to look at twice (a noisy
quantity past its tolerance in the first snapshot after rmmod, gone in the confirming one).

Usage: .venv/bin/python benchmarks/leak_false_alarms.py [--matrix x86_64:6.1,arm64:6.12]
       [--runs 20] [--guests 4] [--cpus 2] [--lab-runs 20] [--families ...] [--labs ...]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from kmodlab import registry
from kmodlab.guest import Guest
from kmodlab.kernels import provision
from kmodlab.leaks import DEFAULT_TOLERANCES
from kmodlab.modules import MEASURED_FAMILIES, build, parse_params
from kmodlab.runner import run_module

LIMITS = {"slab_bytes_max": DEFAULT_TOLERANCES.slab_bytes,
          "vmalloc_other_pages": DEFAULT_TOLERANCES.vmalloc_other_pages,
          "unaccounted_pages": DEFAULT_TOLERANCES.pages,
          "percpu_kb": DEFAULT_TOLERANCES.percpu_kb,
          "caches_left": 0, "module_areas": 0}


def _worst(drifts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for d in drifts:
        for k, v in d.items():
            out[k] = max(out[k], v)
    return dict(out)


def _headroom(worst: dict[str, int]) -> str:
    return ", ".join(f"{k} {worst.get(k, 0)}/{limit}" for k, limit in LIMITS.items())


def families(matrix: list, names: list[str], runs: int, guests: int, cpus: int,
             record: dict) -> tuple[int, int]:
    total = false = 0
    print("\nfamilies (default parameters): kernel | family | runs | false leak reports | "
          "looked twice | other failures | worst measured/tolerance", flush=True)
    for target in matrix:
        kernel = provision(target.arch, target.kernel)
        for family in names:
            built = build(family, parse_params(family, []), kernel)
            reports: list[str] = []
            failures: list[str] = []
            drifts: list[dict[str, int]] = []
            confirmed = 0
            per_guest = [runs // guests + (1 if i < runs % guests else 0) for i in range(guests)]
            t0 = time.monotonic()
            for n in per_guest:
                if not n:
                    continue
                with Guest(kernel, cpus=cpus, memory_mb=1024) as guest:
                    for _ in range(n):
                        run = run_module(guest, built)
                        report = run.leaks
                        if report is not None:
                            drifts.append(report.measurement.drift())
                            confirmed += report.measurement.confirmed > 0
                            if not report.clean:
                                reports.append(report.summary())
                        other = [p for p in run.problems() if not p.startswith("leaked:")]
                        if other:
                            failures.append("; ".join(other))
            done = len(drifts)
            total += done
            false += len(reports)
            worst = _worst(drifts)
            record.setdefault("families", []).append(
                {"kernel": kernel.label, "family": family, "runs": done,
                 "false_reports": reports, "failures": failures, "worst": worst,
                 "confirmed": confirmed, "seconds": round(time.monotonic() - t0, 1)})
            print(f"{kernel.label} | {family} | {done} | {len(reports)} | {confirmed} | "
                  f"{len(failures)} | {_headroom(worst)}", flush=True)
            for text in reports[:3]:
                print(f"    false report: {text}", flush=True)
            for text in failures[:2]:
                print(f"    failure: {text}", flush=True)
    return total, false


def labs(matrix: list, names: list[str], runs: int, record: dict) -> tuple[int, int]:
    from kmodlab.labs.grader import GradeOptions, grade_submission
    from kmodlab.labs.lab import list_labs
    from kmodlab.paths import cache_dir

    total = false = 0
    print("\nlab solutions: kernel | lab | gradings | false leak reports | score not full | "
          "leak checks", flush=True)
    chosen = [lab for lab in list_labs() if not names or lab.id in names]
    for target in matrix:
        for lab in chosen:
            if target.arch not in lab.spec.arches or target.kernel not in lab.spec.kernels:
                continue
            leak_checks = [c.name for c in lab.spec.checks
                           if c.kind in ("no_leaks", "cache_destroyed")]
            reports: list[str] = []
            low: list[str] = []
            t0 = time.monotonic()
            done = 0
            with tempfile.TemporaryDirectory(prefix="kmodlab-falsealarm-") as tmp:
                for i in range(runs):
                    options = GradeOptions(work_dir=Path(tmp) / "work", targets=[target],
                                           build_cache=cache_dir("lab-builds"))
                    result = grade_submission(lab, lab.solution_dir, f"falsealarm-{i}", options)
                    if result.outcome.label == "harness error":
                        low.append(f"harness error: {result.targets[0].error[:200]}")
                        continue
                    done += 1
                    bad = [f"{c.name}: {c.observed}" for c in result.checks
                           if c.kind in ("no_leaks", "cache_destroyed") and not c.passed]
                    notes = [n for t in result.targets for n in t.notes
                             if n.startswith("leak check:")]
                    if bad or notes:
                        reports.append("; ".join(bad + notes))
                    if result.score != result.max_score:
                        failed = [f"{c.name} ({c.observed})"[:160] for c in result.checks
                                  if not c.passed]
                        low.append(f"{result.score}/{result.max_score}: {', '.join(failed)}")
            total += done
            false += len(reports)
            record.setdefault("labs", []).append(
                {"kernel": target.spec, "lab": lab.id, "gradings": done,
                 "false_reports": reports, "not_full": low, "leak_checks": leak_checks,
                 "seconds": round(time.monotonic() - t0, 1)})
            print(f"{target.spec} | {lab.id} | {done} | {len(reports)} | {len(low)} | "
                  f"{', '.join(leak_checks) or 'none (engine detector only)'}", flush=True)
            for text in reports[:3]:
                print(f"    false report: {text}", flush=True)
            for text in low[:2]:
                print(f"    not full marks: {text}", flush=True)
    return total, false


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", default="x86_64:6.1,arm64:6.12")
    parser.add_argument("--runs", type=int, default=20, help="runs per family and kernel")
    parser.add_argument("--guests", type=int, default=4, help="fresh guests per family")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--lab-runs", type=int, default=20, help="gradings per lab and kernel")
    parser.add_argument("--families", default=",".join(MEASURED_FAMILIES))
    parser.add_argument("--labs", default="", help="lab ids (default: every sample lab)")
    parser.add_argument("--no-families", action="store_true")
    parser.add_argument("--no-labs", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    matrix = [registry.parse_target(t) for t in args.matrix.split(",")]
    record: dict = {"tolerances": DEFAULT_TOLERANCES.as_dict(), "cpus": args.cpus}
    t0 = time.monotonic()
    fam = (0, 0) if args.no_families else families(
        matrix, [f for f in args.families.split(",") if f], args.runs, args.guests, args.cpus,
        record)
    lab = (0, 0) if args.no_labs else labs(
        matrix, [n for n in args.labs.split(",") if n], args.lab_runs, record)
    minutes = (time.monotonic() - t0) / 60
    print(f"\nfalse leak reports: families {fam[1]} of {fam[0]} runs, lab solutions {lab[1]} "
          f"of {lab[0]} gradings ({minutes:.1f} min)", flush=True)
    record["summary"] = {"family_runs": fam[0], "family_false": fam[1], "lab_gradings": lab[0],
                         "lab_false": lab[1], "minutes": round(minutes, 1)}
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
