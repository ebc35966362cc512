"""`kmodlab ci init`, `kmodlab ci release` and `kmodlab doctor`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from kmodlab.cliargs import add_matrix_options, add_target_options, matrix_of, target_of
from kmodlab.errors import KmodlabError

if TYPE_CHECKING:
    from kmodlab.ci.install import InstallSource
    from kmodlab.ci.workflows import LabWorkflowSpec
    from kmodlab.labs.lab import Lab


def register(sub: argparse._SubParsersAction) -> None:
    ci = sub.add_parser("ci", help="CI workflows for your repository")
    csub = ci.add_subparsers(dest="ci_command", required=True)
    p = csub.add_parser("init", help="write a workflow running your kmodlab tests on a kernel matrix")
    p.add_argument("system", choices=("github", "gitlab"))
    add_matrix_options(p)
    p.add_argument("--shards", type=int, default=1, help="split each matrix entry (with --lab: "
                                                         "the class) across N jobs")
    p.add_argument("--lab", help="write a grading workflow instead: grade SUBMISSIONS with this "
                                 "lab (a lab shipped with kmodlab or a folder in the repository) "
                                 "in --shards jobs and merge them into one class report; "
                                 "--arch/--kernel then narrow the lab's targets")
    p.add_argument("--submissions", default="submissions", metavar="PATH",
                   help="with --lab: the folder of student folders, relative to the repository "
                        "root (default: submissions)")
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
    targets = [] if args.lab is not None else matrix_of(args)   # checks every name
    source = (parse_install(args.install, Path(args.dir)) if args.install is not None
              else installed_source())
    if args.lab is not None:
        from kmodlab.ci.workflows import render_lab_workflow

        relpath, text = render_lab_workflow(args.system, _lab_workflow(args, source))
    else:
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


def _lab_in_repository(name: str, root: Path) -> tuple[Lab, str]:
    """The lab and how the workflow names it: a folder of the repository (relative to its
    root, where the jobs run) or a lab shipped with kmodlab; anything else a runner lacks."""
    from kmodlab.labs.lab import LAB_FILE, labs_dir, load_lab

    given = Path(name)
    if not given.is_absolute() and (root / given / LAB_FILE).is_file():
        inside = (root / given).resolve()
        if not inside.is_relative_to(root.resolve()):
            raise KmodlabError(f"--lab {name}: the lab folder must be inside {root}")
        return load_lab(inside), given.as_posix()
    lab = load_lab(name)
    if given.parts == (name,) and lab.path == (labs_dir() / name).resolve():
        return lab, name
    raise KmodlabError(f"--lab {name}: a CI runner has only the repository and kmodlab's own "
                       f"labs; give a lab folder inside {root} (relative to it) or the name of "
                       "a lab shipped with kmodlab (kmodlab lab list)")


def _lab_workflow(args: argparse.Namespace, source: InstallSource) -> LabWorkflowSpec:
    """The grading workflow of ``--lab``, on the targets ``lab grade`` will use."""
    import shlex

    from kmodlab import registry
    from kmodlab.ci.workflows import LabWorkflowSpec

    if args.flavour:
        raise KmodlabError("--flavour does not apply with --lab: the lab names its kernels")
    lab, lab_name = _lab_in_repository(args.lab, Path(args.dir))
    words: list[str] = []
    if args.arch or args.kernel:      # as `kmodlab lab grade --arch/--kernel` will choose them
        targets = registry.matrix(args.arch or lab.spec.arches, args.kernel or lab.spec.kernels)
        if not targets:
            raise KmodlabError(f"no target of {lab.id} matches --arch {args.arch} "
                               f"--kernel {args.kernel}")
        for option, values in (("--arch", args.arch), ("--kernel", args.kernel)):
            for value in values or ():
                words += [option, value]
    else:
        targets = lab.spec.grading_targets
    submissions = Path(args.submissions)
    if submissions.is_absolute() or ".." in submissions.parts:
        raise KmodlabError(f"--submissions {args.submissions}: give a folder of the repository, "
                           "relative to its root")
    try:
        return LabWorkflowSpec(install=source.pip_arg, install_description=source.description,
                               lab=lab_name, targets=tuple(str(t) for t in targets),
                               submissions=submissions.as_posix(), shards=args.shards,
                               grade_options=shlex.join(words))
    except ValueError as exc:
        raise KmodlabError(str(exc)) from None


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
