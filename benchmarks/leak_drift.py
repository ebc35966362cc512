#!/usr/bin/env python3
"""Idle drift of the leak detector's quantities: prints figures, asserts nothing.

Loads and unloads a module that allocates nothing (tests/integration/data/leaks/kml_noleak)
many times, in fresh guests (each restored from the snapshot, as ``kmodlab run`` starts one)
and records, for every quantity :mod:`kmodlab.leaks` judges, the largest growth between the
snapshot before insmod and the one after rmmod: both as the runner takes them for the leak
check (every slab cache shrunk first) and without shrinking (the phase snapshots).  The
constants of :data:`kmodlab.leaks.DEFAULT_TOLERANCES` come from this (their docstring has the
figures).

Usage: .venv/bin/python benchmarks/leak_drift.py [--matrix x86_64:6.1,arm64:6.12]
       [--guests 3] [--runs 10] [--cpus 1,2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from kmodlab import registry
from kmodlab.guest import Guest
from kmodlab.kernels import provision
from kmodlab.leaks import capture, measure, read_footprint
from kmodlab.modules import build_source_dir
from kmodlab.runner import LoadedModule

ROOT = Path(__file__).resolve().parent.parent
NOLEAK = ROOT / "tests" / "integration" / "data" / "leaks" / "kml_noleak"
DEFAULT_MATRIX = ",".join(t.spec for t in registry.matrix())


def one_run(guest: Guest, built) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    shrunk_before = capture(guest)
    module = LoadedModule(guest, built, leak_check=False)
    load = module.load()
    footprint = read_footprint(guest, built.module_name, built.ko_path)
    unload = module.unload()
    shrunk_after = capture(guest)
    if not (load.command.ok and unload.command.ok):
        raise SystemExit(f"kml_noleak did not load/unload: {load.command} {unload.command}")
    out = {}
    for label, (b, a) in {"shrunk": (shrunk_before, shrunk_after),
                          "unshrunk": (load.before, unload.after)}.items():
        m = measure(b, a, module=built.module_name, loaded=load.after, footprint=footprint)
        out[label] = {"drift": m.drift(),
                      "caches": {g.cache: (g.objects, g.bytes) for g in m.slab},
                      "other_callers": sorted({e.caller_key for e in m.other_areas}),
                      "meminfo": m.meminfo_kb, "left": [k for k, _c in m.caches_left]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--matrix", default=DEFAULT_MATRIX)
    parser.add_argument("--guests", type=int, default=3, help="fresh guests per configuration")
    parser.add_argument("--runs", type=int, default=10, help="load/unload cycles per guest")
    parser.add_argument("--cpus", default="1,2", help="guest CPU counts to measure")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    everything: dict[str, list] = {}
    quantities = ("slab_objects_max", "slab_bytes_max", "caches_left", "module_areas",
                  "vmalloc_other_pages", "unaccounted_pages", "percpu_kb")
    print(f"kernel | cpus | snapshots | runs | {' | '.join(quantities)} | seconds/run")
    for entry in args.matrix.split(","):
        target = registry.parse_target(entry)
        kernel = provision(target.arch, target.kernel)
        built = build_source_dir(NOLEAK, kernel)
        for cpus in (int(c) for c in args.cpus.split(",")):
            runs: list[dict] = []
            t0 = time.monotonic()
            for _ in range(args.guests):
                with Guest(kernel, cpus=cpus) as guest:
                    for _ in range(args.runs):
                        runs.append(one_run(guest, built))
            per_run = (time.monotonic() - t0) / max(1, len(runs))
            everything[f"{kernel.label}/{cpus}"] = runs
            for label in ("shrunk", "unshrunk"):
                worst: dict[str, int] = defaultdict(int)
                low: dict[str, int] = defaultdict(int)
                caches: dict[str, tuple[int, int]] = {}
                for r in runs:
                    for k, v in r[label]["drift"].items():
                        worst[k] = max(worst[k], v)
                        low[k] = min(low[k], v)
                    for c, (n, b) in r[label]["caches"].items():
                        old = caches.get(c, (0, 0))
                        caches[c] = (max(old[0], n), max(old[1], b))
                cells = " | ".join(f"{worst[k]} (min {low[k]})" for k in runs[0][label]["drift"])
                print(f"{kernel.label} | {cpus} | {label} | {len(runs)} | {cells} | "
                      f"{per_run:.2f}", flush=True)
                top = sorted(caches.items(), key=lambda kv: -kv[1][1])[:6]
                print("    top caches (max objects, max bytes): " + ", ".join(
                    f"{c} {n}/{b}" for c, (n, b) in top), flush=True)
                callers = sorted({c for r in runs for c in r[label]["other_callers"]})
                print(f"    new vmalloc callers: {', '.join(callers) or 'none'}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
