#!/usr/bin/env python3
"""pytest-plugin benchmark: prints figures, asserts nothing.

1. Wall time of the example suite (examples/) on the matrix, serial and with `-n 2`.
2. Per-test overhead on a warm guest: a load/observe/unload test (build cached) timed in-process
   with the same objects the fixtures use, median of N.
Usage: .venv/bin/python benchmarks/plugin_bench.py [--matrix ...] [--samples 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kmodlab import registry
from kmodlab.guest import Guest
from kmodlab.kernels import provision
from kmodlab.testing import module_factory

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MATRIX = ",".join(t.spec for t in registry.matrix())   # every target of the registry


def suite_seconds(matrix: list[tuple[str, str]], workers: int) -> float:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "examples")]
    for arch in sorted({a for a, _ in matrix}):
        argv += ["--kmodlab-arch", arch]
    for series in sorted({s for _, s in matrix}):
        argv += ["--kmodlab-kernel", series]
    if workers > 1:
        argv += ["-n", str(workers)]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def per_test_overhead(arch: str, series: str, samples: int) -> float:
    kernel = provision(arch, series)
    with Guest(kernel) as guest:
        make = module_factory(guest, [])
        make("kmalloc", sizes=[160], gfp=["GFP_KERNEL"])     # warm the build cache
        times = []
        for _ in range(samples):
            t0 = time.perf_counter()
            module = make("kmalloc", sizes=[160], gfp=["GFP_KERNEL"])
            module.load()
            module.unload()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matrix", default=DEFAULT_MATRIX)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    matrix = [(t.arch, t.kernel) for t in map(registry.parse_target, args.matrix.split(","))]
    suite_seconds(matrix, 1)   # warm builds and snapshots, so both timings see the same caches
    print(f"example suite ({len(matrix)} kernels): serial {suite_seconds(matrix, 1):.1f} s, "
          f"-n 2 {suite_seconds(matrix, 2):.1f} s", flush=True)
    for arch, series in matrix:
        seconds = per_test_overhead(arch, series, args.samples)
        print(f"{arch}-{series}: load/observe/unload test on a warm guest: {seconds:.2f} s (median)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
