#!/usr/bin/env python3
"""Guest benchmark: prints figures, asserts nothing.

Per arch x kernel: cold boot to the agent's first answer, snapshot restore to the first answer,
command round trip (median of N `true`) over serial and SSH, and a 300 KB push on each transport.
Usage: .venv/bin/python benchmarks/guest_bench.py [--matrix x86_64:6.1,arm64:6.12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kmodlab import registry
from kmodlab.guest import Guest
from kmodlab.kernels import provision
from kmodlab.snapshot import snapshot_key, snapshot_path

DEFAULT_MATRIX = ",".join(t.spec for t in registry.matrix())   # every target of the registry


def _rtt_ms(guest: Guest, n: int, isolate: bool = True) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        guest.run("true", isolate=isolate)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def _push_s(guest: Guest, payload: Path) -> float:
    t0 = time.perf_counter()
    guest.push(payload, "/tmp/bench.bin")
    return time.perf_counter() - t0


def bench_kernel(arch: str, series: str, rounds: int, n_rtt: int, payload: Path) -> dict[str, object]:
    kernel = provision(arch, series)
    cold, restore = [], []
    figures: dict[str, object] = {"kernel": kernel.release}
    for _ in range(rounds):
        t0 = time.perf_counter()
        with Guest(kernel, snapshots=False) as g:
            g.run("true")
            cold.append(time.perf_counter() - t0)
    # Make sure a snapshot exists, then time restores.
    with Guest(kernel) as g:
        key = snapshot_key(g.profile, g._config, kernel.release)
    assert snapshot_path(key).exists()
    for _ in range(rounds):
        t0 = time.perf_counter()
        with Guest(kernel) as g:
            g.run("true")
            restore.append(time.perf_counter() - t0)
    for transport in ("serial", "ssh"):
        with Guest(kernel, transport=transport) as g:
            figures[f"{transport}_rtt_ms"] = round(_rtt_ms(g, n_rtt), 2)
            figures[f"{transport}_trusted_rtt_ms"] = round(_rtt_ms(g, n_rtt, isolate=False), 2)
            figures[f"{transport}_push_300k_s"] = round(min(_push_s(g, payload) for _ in range(3)), 3)
    figures["cold_boot_s"] = f"{min(cold):.2f}/{statistics.median(cold):.2f}"
    figures["restore_s"] = f"{min(restore):.2f}/{statistics.median(restore):.2f}"
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--matrix", default=DEFAULT_MATRIX)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt-samples", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payload.bin"
        payload.write_bytes(os.urandom(300 * 1024))
        header = ("kernel", "cold_boot_s", "restore_s", "serial_rtt_ms", "ssh_rtt_ms",
                  "serial_trusted_rtt_ms", "ssh_trusted_rtt_ms", "serial_push_300k_s",
                  "ssh_push_300k_s")
        print("boot/restore: start to the first answered command, min/median over rounds; "
              "RTT: median of `true` (trusted: isolate=False, no subshell); push: best of 3")
        print(" | ".join(header))
        for entry in args.matrix.split(","):
            target = registry.parse_target(entry)
            arch, series = target.arch, target.kernel
            figures = bench_kernel(arch, series, args.rounds, args.rtt_samples, payload)
            print(" | ".join(str(figures[h]) for h in header), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
