"""`kmodlab ci init` and `kmodlab doctor`."""

from __future__ import annotations

import argparse
from pathlib import Path

from kmodlab.cliargs import add_matrix_options, matrix_of
from kmodlab.errors import KmodlabError


def register(sub: argparse._SubParsersAction) -> None:
    ci = sub.add_parser("ci", help="CI workflows for your repository")
    csub = ci.add_subparsers(dest="ci_command", required=True)
    p = csub.add_parser("init", help="write a workflow running your kmodlab tests on a kernel matrix")
    p.add_argument("system", choices=("github", "gitlab"))
    add_matrix_options(p)
    p.add_argument("--shards", type=int, default=1, help="split each matrix entry across N jobs")
    p.add_argument("--tests", default="tests", help="pytest path(s) to run (default: tests)")
    p.add_argument("--dir", default=".", help="repository root to write into")
    p.add_argument("--force", action="store_true", help="overwrite an existing workflow file")
    p.set_defaults(func=cmd_ci_init)

    p = sub.add_parser("doctor", help="check (and with --install, install) kmodlab's host packages")
    p.add_argument("--install", action="store_true", help="apt-get install what is missing")
    p.set_defaults(func=cmd_doctor)


def cmd_ci_init(args: argparse.Namespace) -> int:
    from kmodlab.ci.workflows import WorkflowSpec, render_workflow

    if args.shards < 1:
        raise KmodlabError("--shards must be 1 or more")
    targets = matrix_of(args)   # checks every name against the registry
    spec = WorkflowSpec(arches=tuple(dict.fromkeys(t.arch for t in targets)),
                        kernels=tuple(dict.fromkeys(t.kernel for t in targets)),
                        shards=args.shards, tests=args.tests)
    relpath, text = render_workflow(args.system, spec)
    target = Path(args.dir) / relpath
    if target.exists() and not args.force:
        raise KmodlabError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from kmodlab.ci.hostdeps import install, missing_packages

    missing = missing_packages()
    if missing and args.install:
        install(missing)
        missing = missing_packages()
    if missing:
        print("missing Debian packages: " + " ".join(missing))
        print("install them with: kmodlab doctor --install  (or apt-get install ...)")
        return 1
    print("all host packages kmodlab needs are installed")
    return 0
