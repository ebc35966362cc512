"""Save a booted kernel's allocator /proc files as test fixtures.

The parser and model fixture tests (tests/unit/test_observe_fixtures.py,
tests/unit/test_model_fixtures.py) read ``tests/fixtures/proc/<arch>-<series>/<kind>.txt``;
this writes them from a real guest, so the fixtures are captures, never hand-written::

    python -m kmodlab.check.capture --arch arm64 --kernel 6.12 tests/fixtures/proc
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kmodlab.guest import Guest

CAPTURED = ("slabinfo", "buddyinfo", "vmallocinfo", "meminfo", "zoneinfo")


def capture_proc(guest: Guest) -> dict[str, str]:
    """The text of each /proc file in :data:`CAPTURED` and the kernel log, read in the guest."""
    out = {kind: guest.run(f"cat /proc/{kind}", must_succeed=True, isolate=False).stdout
           for kind in CAPTURED}
    out["dmesg"] = guest.run("dmesg", must_succeed=True, isolate=False).stdout
    return out


def save_capture(guest: Guest, root: Path) -> Path:
    """Write ``<root>/<arch>-<series>[+<configs>]/<kind>.txt`` and ``capture.json``; returns
    the directory.  A kernel built from source (``--config``) also saves its ``.config`` as
    ``kconfig`` (not Debian's, so the model must read this one)."""
    kernel = guest.kernel
    major, minor = kernel.version
    configs = "+".join(kernel.config_names)
    dest = root / (f"{kernel.arch}-{major}.{minor}" + (f"+{configs}" if configs else ""))
    dest.mkdir(parents=True, exist_ok=True)
    for kind, text in capture_proc(guest).items():
        (dest / f"{kind}.txt").write_text(text)
    meta = {"ncpus": guest.options.cpus, "memory_mb": guest.options.memory_mb,
            "release": kernel.release, "package_version": kernel.package_version,
            "source": "kmodlab.check.capture from a freshly booted guest"}
    if configs:
        meta["config_names"] = list(kernel.config_names)
        (dest / "kconfig").write_text("".join(f"{k}={v}\n"
                                              for k, v in sorted(kernel.kconfig.items())))
    (dest / "capture.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    from kmodlab.cliargs import add_target_options, target_of
    from kmodlab.kernels import provision_target

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_target_options(parser)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--memory", type=int, default=512)
    parser.add_argument("root", type=Path, help="e.g. tests/fixtures/proc")
    args = parser.parse_args(argv)
    target = target_of(args)
    kernel = provision_target(target)
    with Guest(kernel, cpus=args.cpus, memory_mb=args.memory) as guest:
        print(save_capture(guest, args.root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
