#!/usr/bin/env python3
"""Kernel build benchmark: cold builds from Debian's source with config fragments.  Prints
figures, asserts nothing.

For each ``ARCH:SERIES+FRAGMENT...`` it builds with ``--rebuild`` (a cold build: the unpacked
source stays cached, every object is compiled), then asks again (a cached lookup), then boots the
result once in a guest (cold boot to the first command, no snapshot).  The machine should be
otherwise idle; the build uses every CPU.

    .venv/bin/python benchmarks/kernel_build_bench.py [x86_64:6.1+debug-memory ...] [--jobs N]
        [--no-boot]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kbuild import build_kernel
from kmodlab.registry import parse_target

DEFAULT = ["x86_64:6.1+debug-memory", "arm64:6.1+debug-memory"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=DEFAULT)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--no-boot", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, jobs {args.jobs}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| kernel | files compiled | cold build s | cached lookup s | cold boot s |")
    print("|---|---|---|---|---|")
    for spec in args.targets:
        target = parse_target(spec)
        t0 = time.monotonic()
        kernel = build_kernel(target.arch, target.series, target.config, jobs=args.jobs,
                              rebuild=True)
        cold = time.monotonic() - t0
        t0 = time.monotonic()
        build_kernel(target.arch, target.series, target.config, jobs=args.jobs)
        cached = time.monotonic() - t0
        stats = json.loads((kernel.root / "build.json").read_text())
        boot = "-"
        if not args.no_boot:
            t0 = time.monotonic()
            with Guest(kernel, GuestOptions(snapshots=False, memory_mb=1024)) as guest:
                guest.run("true")
            boot = f"{time.monotonic() - t0:.1f}"
        print(f"| {kernel.release} ({target.arch}) | {stats['compiled']} | {cold:.0f} | "
              f"{cached:.2f} | {boot} |", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
