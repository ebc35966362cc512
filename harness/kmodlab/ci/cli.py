"""`kmodlab ci init`, `kmodlab ci release` and `kmodlab doctor`."""

from __future__ import annotations

import argparse
from pathlib import Path

from kmodlab.cliargs import add_matrix_options, add_target_options, matrix_of, target_of
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
    p.add_argument("--install", metavar="SOURCE",
                   help="where CI installs kmodlab from: git+https://...@COMMIT, a wheel path "
                        "(in the repository) or URL, or '.' when the repository is kmodlab; "
                        "default: the source this kmodlab was installed from, when a runner "
                        "can reach it")
    p.set_defaults(func=cmd_ci_init)

    p = csub.add_parser("release", help="resolve a target to its exact kernel release now "
                                        "(what a CI cache is keyed by)")
    add_target_options(p)
    p.add_argument("--format", choices=("text", "env", "json"), default="text",
                   help="text: the release; env: release=, version= and key= lines (for "
                        "$GITHUB_OUTPUT); json")
    p.set_defaults(func=cmd_ci_release)

    p = sub.add_parser("doctor", help="check (and with --install, install) kmodlab's host packages")
    p.add_argument("--install", action="store_true", help="apt-get install what is missing")
    p.set_defaults(func=cmd_doctor)


def cmd_ci_init(args: argparse.Namespace) -> int:
    import sys

    from kmodlab.ci.install import installed_source, parse_install
    from kmodlab.ci.workflows import WorkflowSpec, render_workflow

    if args.shards < 1:
        raise KmodlabError("--shards must be 1 or more")
    targets = matrix_of(args)   # checks every name against the registry
    source = (parse_install(args.install, Path(args.dir)) if args.install is not None
              else installed_source())
    spec = WorkflowSpec(install=source.pip_arg, install_description=source.description,
                        arches=tuple(dict.fromkeys(t.arch for t in targets)),
                        kernels=tuple(dict.fromkeys(t.kernel for t in targets)),
                        flavour=args.flavour or "", shards=args.shards, tests=args.tests)
    relpath, text = render_workflow(args.system, spec)
    target = Path(args.dir) / relpath
    if target.exists() and not args.force:
        raise KmodlabError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    if source.warning:
        print(f"kmodlab: warning: {source.warning}", file=sys.stderr)
    print(f"wrote {target} (kmodlab installed from {source.description})")
    return 0


def cmd_ci_release(args: argparse.Namespace) -> int:
    import json

    from kmodlab.kernels import resolve

    target = target_of(args)
    resolved = resolve(target.arch, target.kernel, target.flavour or None)
    key = f"{resolved.release}_{resolved.version}".replace(":", "_").replace(",", "_")
    if args.format == "json":
        print(json.dumps({"arch": target.arch, "release": resolved.release,
                          "version": resolved.version, "key": key}))
    elif args.format == "env":
        print(f"release={resolved.release}\nversion={resolved.version}\nkey={key}")
    else:
        print(resolved.release)
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
