"""``kmodlab faults MODULE``: fail each of a module's allocations in turn and judge its error
paths (kmodlab.faults.sweep)."""

from __future__ import annotations

import argparse
import json
import sys

from kmodlab.cliargs import add_target_options, positive_int, target_of

FAULT_CONFIG = "fault-injection"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("faults", help="fail each allocation of a module in turn (init, exit, a "
                                      "command) and report how every site copes",
                       description="Fail the 1st, 2nd, ... allocation of the module's init "
                       "(and exit, or a command) in a pristine guest each, until none is left; "
                       "report each allocation site of the module as handled, crashed, "
                       "leaked, reported or hung. Exit status 1 when a site is not handled. "
                       f"The kernel is built with kconfig/{FAULT_CONFIG}.config (added to "
                       "--config when missing).")
    p.add_argument("target", help="a directory with your module's sources, or a family")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="family template parameter (repeatable)")
    p.add_argument("module_args", nargs="*", metavar="-- k=v", help="insmod parameters")
    p.add_argument("--module", metavar="NAME", help="the .ko to use when the tree builds several")
    p.add_argument("--path", action="append", choices=("init", "exit"),
                   help="which paths to sweep (repeatable; default: init)")
    p.add_argument("--command", help="also sweep this command (one program, run while the "
                                     "module is loaded), e.g. \"dd if=/dev/mydev bs=64 count=1\"")
    p.add_argument("--max-nth", type=positive_int, default=2000,
                   help="give up after this many calls per path (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds each injected command may take before it counts as hung")
    p.add_argument("--no-kmemleak", action="store_true",
                   help="skip kmemleak's scan after each run (5 s each) on kernels that have it")
    p.add_argument("--json", action="store_true")
    add_target_options(p)
    p.set_defaults(func=cmd_faults, rebuild=False, werror=False)


def _with_fault_injection(config: str | None) -> str:
    from kmodlab.kernels.fragments import split_names

    names = list(split_names(config))
    return ",".join([FAULT_CONFIG, *[n for n in names if n != FAULT_CONFIG]])


def cmd_faults(args: argparse.Namespace) -> int:
    from kmodlab.cli import _build
    from kmodlab.faults.report import render_faults
    from kmodlab.faults.sweep import check_request, sweep_failures
    from kmodlab.kernels import provision_target

    check_request(args.path or ("init",), args.command, args.max_nth)   # before any build
    args.config = _with_fault_injection(getattr(args, "config", None))
    kernel = provision_target(target_of(args))
    built = _build(args, kernel)

    def progress(text: str) -> None:
        if not args.json:
            print(f"kmodlab faults: {text}", file=sys.stderr, flush=True)

    report = sweep_failures(kernel, built, paths=args.path or ("init",), command=args.command,
                            max_nth=args.max_nth, timeout=args.timeout,
                            kmemleak_scan=not args.no_kmemleak, progress=progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(render_faults(report), end="")
    return 0 if report.ok else 1
