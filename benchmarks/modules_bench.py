#!/usr/bin/env python3
"""Module benchmark: prints figures, asserts nothing.

Per family and kernel: cold build (cache bypassed), cached build, and one load-observe-unload
cycle on a warm guest (build cached; /proc snapshots before and after each phase included).
Usage: .venv/bin/python benchmarks/modules_bench.py [--matrix x86_64:6.1,arm64:6.12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from kmodlab import registry
from kmodlab.guest import Guest
from kmodlab.kernels import provision
from kmodlab.modules import MEASURED_FAMILIES, build, parse_params
from kmodlab.runner import run_module

DEFAULT_MATRIX = ",".join(t.spec for t in registry.matrix())   # every target of the registry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matrix", default=DEFAULT_MATRIX)
    parser.add_argument("--cycles", type=int, default=3, help="load/unload cycles per family")
    args = parser.parse_args()
    print("kernel | family | cold build s | cached build ms | cycle s (median)")
    for entry in args.matrix.split(","):
        target = registry.parse_target(entry)
        arch, series = target.arch, target.kernel
        kernel = provision(arch, series)
        with Guest(kernel) as guest:
            for family in MEASURED_FAMILIES:   # bugs crash on purpose
                params = parse_params(family, [])
                t0 = time.perf_counter()
                build(family, params, kernel, force=True)
                cold = time.perf_counter() - t0
                t0 = time.perf_counter()
                built = build(family, params, kernel)
                cached = (time.perf_counter() - t0) * 1000
                cycles = []
                for _ in range(args.cycles):
                    t0 = time.perf_counter()
                    run = run_module(guest, built)
                    cycles.append(time.perf_counter() - t0)
                    if not run.ok:
                        print(f"  note: {family} run not ok on {kernel.release}", file=sys.stderr)
                print(f"{kernel.label} | {family} | {cold:.1f} | {cached:.1f} | "
                      f"{statistics.median(cycles):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
