#!/usr/bin/env python3
"""CLI start-up benchmark: prints figures, asserts nothing.

Whole-process wall time (fork to exit, as a user's shell sees it) of:

* ``kmodlab --help``;
* ``kmodlab exec -- true`` warm: the guest snapshot exists, so the guest is a restore;
* ``kmodlab exec -- true`` cold: that snapshot entry is removed first (the one the command
  itself would restore, found with kmodlab's own snapshot key), so the command boots the
  kernel and saves a new snapshot, as the first run on a machine does.  The provisioned
  kernel and the cached initramfs stay: a run without them is a download and an image build,
  not a CLI figure.

Each figure is the median (and min/max) of N runs after one unmeasured run; stdout and stderr
of the runs are discarded.  It boots QEMU: run it alone, under the machine's QEMU lock:

    flock /tmp/kmodlab-qemu.lock .venv/bin/python benchmarks/cli_bench.py [--runs 7]
        [--cold-runs 3] [--arch x86_64 --kernel 6.1] [--pycache DIR] [--help-only]

``--pycache DIR`` runs the commands with byte-code caching on (``PYTHONPYCACHEPREFIX=DIR``,
``PYTHONDONTWRITEBYTECODE`` unset), as an installed kmodlab runs; without it the commands get
this process's environment as it is (the figures say which).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kmodlab.cliargs import add_target_options, target_of


def kmodlab_argv() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m kmodlab.cli``."""
    script = Path(sys.executable).with_name("kmodlab")
    if script.is_file():
        return [str(script)]
    found = shutil.which("kmodlab")
    return [found] if found else [sys.executable, "-m", "kmodlab.cli"]


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()[-2000:]}")
    return seconds


def figures(argv: list[str], env: dict[str, str], runs: int, before=None) -> list[float]:
    """One unmeasured run, then ``runs`` measured ones (``before`` runs, untimed, before each)."""
    if before is not None:
        before()
    timed(argv, env)
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        times.append(timed(argv, env))
    return times


def snapshot_entry(target) -> Path:
    """The snapshot entry ``kmodlab exec`` restores for ``target`` with its default options."""
    from kmodlab.guest import GuestOptions, prepare_qemu_config
    from kmodlab.kernels import provision
    from kmodlab.registry import arch_profile
    from kmodlab.snapshot import snapshot_key, snapshot_path

    kernel = provision(target.arch, target.kernel, flavour=target.flavour or None)
    options = GuestOptions(transport="serial", memory_mb=512, cpus=1, accel="auto",
                           boot_timeout=60.0, snapshots=True)    # kmodlab exec's defaults
    config, _ = prepare_qemu_config(kernel, options)
    return snapshot_path(snapshot_key(arch_profile(kernel.arch), config, kernel.release))


def remove_snapshot(entry: Path) -> None:
    from kmodlab.paths import entry_lock, remove_entry

    with entry_lock(entry):
        if entry.exists():
            remove_entry(entry)


def row(name: str, times: list[float]) -> str:
    return (f"| {name} | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} "
            f"| {len(times)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_options(parser)
    parser.add_argument("--runs", type=int, default=7, help="measured runs of --help and warm exec")
    parser.add_argument("--cold-runs", type=int, default=3, help="measured cold exec runs")
    parser.add_argument("--pycache", metavar="DIR", help="byte-code cache folder for the runs")
    parser.add_argument("--help-only", action="store_true", help="only `kmodlab --help`")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.pycache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(args.pycache).resolve())
    base = kmodlab_argv()
    target = target_of(args)
    selector = ["--arch", target.arch, "--kernel", target.kernel]
    if target.flavour:
        selector += ["--flavour", target.flavour]
    exec_argv = [*base, "exec", *selector, "--", "true"]

    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, byte-code cache: "
          f"{'off (PYTHONDONTWRITEBYTECODE)' if env.get('PYTHONDONTWRITEBYTECODE') else 'on'}"
          f"{' in ' + env['PYTHONPYCACHEPREFIX'] if env.get('PYTHONPYCACHEPREFIX') else ''}")
    print(f"command: {' '.join(base)}; target {target.spec}")
    print()
    print("| command | median s | min s | max s | runs |")
    print("|---|---|---|---|---|")
    print(row("kmodlab --help", figures([*base, "--help"], env, args.runs)), flush=True)
    if args.help_only:
        return 0
    print(row("kmodlab exec -- true (warm: snapshot restore)", figures(exec_argv, env, args.runs)),
          flush=True)
    entry = snapshot_entry(target) if args.cold_runs > 0 else None
    if entry is not None and not entry.exists():
        # The warm runs restored (or saved) the command's snapshot: its key is not this one.
        print(f"no snapshot at {entry} after the warm runs: the key computed here is not the "
              "command's; cold runs skipped")
    elif entry is not None:
        cold = figures(exec_argv, env, args.cold_runs, before=lambda: remove_snapshot(entry))
        print(row("kmodlab exec -- true (cold: boot + snapshot save)", cold), flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
