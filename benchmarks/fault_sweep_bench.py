#!/usr/bin/env python3
"""Fault-sweep benchmark: how many injected failures per second ``kmodlab faults`` tests.
Prints figures, asserts nothing.

For each ``ARCH:SERIES+FRAGMENTS`` kernel (built if missing) it sweeps the init path of the
sample module tests/integration/data/error_paths/kml_ep_ok (a kmalloc, a kmem_cache with one
object, a vmalloc: each checked and unwound), the slab and the page allocator in turn, and
prints the runs (one pristine guest each: the bisection's and the sweep's), the module's sites
and calls per second.  ``--kmemleak`` scans after every judged run on kernels that have it
(what a lab's error_paths check does).  The machine should be otherwise idle.

    .venv/bin/python benchmarks/fault_sweep_bench.py [--kmemleak] [--skip-idle auto|on|off]
        [x86_64:6.1+fault-injection ...]

The first sweep of a guest configuration boots it cold once (its snapshot is then reused),
which the seconds include; run twice for the warm figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kmodlab.faults import sweep_failures
from kmodlab.kernels.kbuild import build_kernel
from kmodlab.modules import build_source_dir
from kmodlab.registry import parse_target

MODULE = Path(__file__).resolve().parents[1] / "tests/integration/data/error_paths/kml_ep_ok"
DEFAULT = ["x86_64:6.1+fault-injection", "x86_64:6.1+fault-injection+debug-memory"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=DEFAULT)
    parser.add_argument("--kmemleak", action="store_true",
                        help="scan with kmemleak after every judged run")
    parser.add_argument("--skip-idle", choices=("auto", "on", "off"), default="auto",
                        help="guests skip idle time (QEMU -icount; auto: when kmemleak scans)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| kernel | runs | of them bisection | module sites | calls failed at them | "
          "seconds | runs/s | module calls/s |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in args.targets:
        target = parse_target(spec)
        kernel = build_kernel(target.arch, target.series, target.config)
        built = build_source_dir(MODULE, kernel, [], module_name=MODULE.name)
        t0 = time.monotonic()
        skip = {"auto": None, "on": True, "off": False}[args.skip_idle]
        report = sweep_failures(kernel, built, kmemleak_scan=args.kmemleak, skip_idle=skip)
        seconds = time.monotonic() - t0
        probes = sum(s.probes for s in report.sweeps)
        module_sites = [s for s in report.sites if not s.site.startswith("(")]
        module_calls = sum(len(s.runs) for s in module_sites)
        label = kernel.label + (" kmemleak" if args.kmemleak else "") + (
            f" skip-idle={args.skip_idle}" if args.skip_idle != "auto" else "")
        print(f"| {label} | {report.runs} | {probes} | {len(module_sites)} | "
              f"{module_calls} | {seconds:.1f} | {report.runs / seconds:.2f} | "
              f"{module_calls / seconds:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
