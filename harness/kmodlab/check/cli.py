"""``kmodlab check [FAMILY ...]``: predict, measure, cross-check.

Exit status: 0 when every row passed, 1 when a prediction failed (the output names the rule
that predicted it), 2 when a family could not be checked (build error, guest crash...).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab.cliargs import add_target_options, positive_int, target_of

if TYPE_CHECKING:
    from kmodlab.check.observation import Observation, Probe

log = logging.getLogger(__name__)

# The keys of kmodlab.check.families.CHECKS, in its order (tests/unit/test_cli_fast.py holds them
# equal): the help text names them without importing the checks, the runner and the model.
FAMILY_NAMES = ("kmalloc", "kmem_cache", "mempool", "vmalloc", "percpu", "devres", "pages",
                "ioremap", "dma")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "check", help="predict allocator numbers with the model, measure them in a guest, compare",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("families", nargs="*", metavar="FAMILY",
                   help=f"families to check (default: all): {', '.join(FAMILY_NAMES)}")
    add_target_options(p)
    p.add_argument("--transport", default="serial", choices=("serial", "ssh"))
    p.add_argument("--cpus", type=positive_int, default=1, help="guest CPUs (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--all", dest="all_rows", action="store_true",
                   help="list every row (test, quantity, predicted, observed, rule, verdict)")
    p.add_argument("--record", metavar="DIR", type=Path,
                   help="also save each probe's observation in DIR (<probe>.json.gz; compare "
                        "again offline with kmodlab.check.replay.load_observation)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from kmodlab.check.report import render_check, report_to_json
    from kmodlab.check.run import resolve_families, run_check
    from kmodlab.kernels import provision_target

    families = resolve_families(args.families)
    target = target_of(args)
    kernel = provision_target(target)
    record = None
    if args.record is not None:
        from kmodlab.check.replay import save_observation

        args.record.mkdir(parents=True, exist_ok=True)

        def record(obs: Observation) -> None:
            save_observation(obs, args.record / f"{obs.probe.name.replace('/', '-')}.json.gz")

    report = run_check(kernel, families, cpus=args.cpus, transport=args.transport,
                       on_probe=_progress, on_observation=record)
    if args.json:
        json.dump(report_to_json(report), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_check(report, all_rows=args.all_rows))
    return report.exit_code


def _progress(probe: Probe) -> None:
    """One line per probe on a terminal (builds and the first boot take a while)."""
    if sys.stderr.isatty():
        print(f"kmodlab check: {probe.name} ...", file=sys.stderr, flush=True)
    else:
        log.info("probe %s", probe.name)
