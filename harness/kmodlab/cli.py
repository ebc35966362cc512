"""The ``kmodlab`` command line.  Thin: each command is a few calls into the library."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shlex
import signal
import sys
from collections.abc import Callable, Sequence

from kmodlab.cliargs import add_target_options, positive_int, positive_seconds, target_of
from kmodlab.errors import KernelCrash, KmodlabError

log = logging.getLogger("kmodlab")

# Modules that add subcommands through register(subparsers) (a missing one is simply absent).
FEATURE_COMMANDS = ("kmodlab.check.cli", "kmodlab.claims.cli", "kmodlab.labs.cli",
                    "kmodlab.ci.cli", "kmodlab.detect.cli", "kmodlab.faults.cli")


def _guest_args(p: argparse.ArgumentParser) -> None:
    add_target_options(p)
    p.add_argument("--transport", default="serial", choices=("serial", "ssh"))
    p.add_argument("--memory", type=positive_int, default=512,
                   help="guest RAM in MiB (default: %(default)s)")
    p.add_argument("--cpus", type=positive_int, default=1, help="guest CPUs (default: %(default)s)")
    p.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    p.add_argument("--boot-timeout", type=positive_seconds, default=60.0,
                   help="seconds a cold boot may take (default: %(default)s)")
    p.add_argument("--no-snapshot", action="store_true",
                   help="always cold-boot; neither use nor save a guest snapshot")


def _provision(args: argparse.Namespace):
    from kmodlab.kernels import provision_target

    return provision_target(target_of(args))


def _guest(args: argparse.Namespace):
    from kmodlab.guest import Guest, GuestOptions

    kernel = _provision(args)
    options = GuestOptions(transport=args.transport, memory_mb=args.memory, cpus=args.cpus,
                           accel=args.accel, boot_timeout=args.boot_timeout,
                           snapshots=not args.no_snapshot)
    return Guest(kernel, options)


# ----------------------------------------------------------------------------- commands
def cmd_kernels_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from kmodlab.kernels import list_kernels

    rows = [choice.as_dict() for choice in list_kernels(online=not args.offline)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    table = Table(title="kernels kmodlab can provision (cloud is the default flavour)")
    for key in rows[0] if rows else ():
        table.add_column(str(key))
    for row in rows:
        table.add_row(*(str(v) if v is not None else "" for v in row.values()))
    Console().print(table)
    return 0


def cmd_kernels_fetch(args: argparse.Namespace) -> int:
    """Provision, verify every file of the entry (``--deep``: hashes too), repair a damaged one."""
    from kmodlab.kernels.provisioning import fetch

    target = target_of(args)
    result = fetch(target.arch, target.kernel, flavour=target.flavour or None, deep=args.deep)
    kernel = result.kernel
    checked = f"{result.files} files {'hashed' if args.deep else 'checked'}"
    if result.repaired:
        print(f"{kernel.release} ({kernel.package_version}) was damaged ({result.repaired}); "
              f"fetched again, {checked}, ready in {kernel.root}")
    else:
        print(f"{kernel.release} ({kernel.package_version}) verified ({checked}), ready in "
              f"{kernel.root}")
    return 0


def cmd_kernels_build(args: argparse.Namespace) -> int:
    """Build (or find cached) the kernel of ``--config`` from Debian's source."""
    from kmodlab.kernels.kbuild import build_kernel

    target = target_of(args)
    if not target.config:
        raise KmodlabError("kmodlab kernels build needs --config NAMES (see `kmodlab kernels "
                           "configs`): Debian's own kernels are fetched, not built")
    kernel = build_kernel(target.arch, target.series, target.config, jobs=args.jobs,
                          rebuild=args.rebuild)
    if args.json:
        print(kernel.to_json())
    else:
        print(f"{kernel.release} ({target.arch}, linux-source {kernel.package_version}, config "
              f"{'+'.join(kernel.config_names)}) ready in {kernel.root}")
        if kernel.boot_cmdline:
            print(f"boots with: {' '.join(kernel.boot_cmdline)}")
    return 0


def cmd_kernels_configs(args: argparse.Namespace) -> int:
    """List kconfig/'s fragments: what each sets, its boot parameters, where it applies."""
    from kmodlab.kernels.fragments import available, load_fragments

    rows = []
    for fragment in load_fragments(available()):
        rows.append({"name": fragment.name, "build": fragment.needs_build,
                     "options": [f"{o.requirement.option}={o.requirement.allowed[0]}"
                                 + (f" (only {','.join(o.only)})" if o.only else "")
                                 for o in fragment.options],
                     "boot": [b.param for b in fragment.boot],
                     "arches": list(fragment.arches), "series": list(fragment.series)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        where = ", ".join(filter(None, [" ".join(row["arches"]), " ".join(row["series"])]))
        kind = "built from source" if row["build"] else "boot parameters on Debian's kernels"
        print(f"{row['name']}: {kind}" + (f" ({where} only)" if where else ""))
        for option in row["options"]:
            print(f"    {option}")
        for param in row["boot"]:
            print(f"    boot: {param}")
    return 0


def guest_command_line(words: Sequence[str]) -> str:
    """The shell line the guest runs for ``kmodlab exec -- WORDS``: one word is a shell line as
    given (``'cat /proc/slabinfo | head'``); several are one command's arguments, quoted, so
    ``sh -c 'a; b'`` reaches the guest as two words, not as ``sh -c a`` followed by ``b``."""
    if len(words) == 1:
        return words[0]
    return shlex.join(words)


def cmd_exec(args: argparse.Namespace) -> int:
    command = guest_command_line(args.command)
    if not command:
        raise KmodlabError("nothing to run: give a command after --, e.g. kmodlab exec -- uname -a")
    with _guest(args) as guest:
        result = guest.run(command, timeout=args.timeout)
    sys.stdout.buffer.write(result.stdout_bytes)
    sys.stderr.buffer.write(result.stderr_bytes)
    return result.exit_status


def cmd_boot(args: argparse.Namespace) -> int:
    from kmodlab.interactive import boot_interactive

    return boot_interactive(_provision(args), memory_mb=args.memory, cpus=args.cpus,
                            accel=args.accel, ssh=args.transport == "ssh")


def _family_or_dir(target: str) -> tuple[str | None, str | None]:
    from pathlib import Path

    from kmodlab.modules import FAMILIES

    if target in FAMILIES:
        return target, None
    if Path(target).is_dir():
        return None, target
    raise KmodlabError(f"'{target}' is neither a module family ({', '.join(FAMILIES)}) nor a "
                       "directory with a module's sources")


def _build(args: argparse.Namespace, kernel):
    from pathlib import Path

    from kmodlab.modules import build, build_source_dir, parse_params

    family, directory = _family_or_dir(args.target)
    if family is not None:
        built = build(family, parse_params(family, args.param or []), kernel, force=args.rebuild)
    else:
        built = build_source_dir(Path(directory), kernel, list(args.module_args or []),
                                 module_name=args.module, force=args.rebuild)
    for warning in built.warnings:
        print(f"kmodlab: build warning: {warning}", file=sys.stderr)
    if args.werror and built.warnings:
        raise KmodlabError(f"{len(built.warnings)} build warning(s) and --werror; the log: "
                           f"{built.log_path}")
    return built


def cmd_build(args: argparse.Namespace) -> int:
    built = _build(args, _provision(args))
    if args.json:
        print(json.dumps({"ko": str(built.ko_path), "module": built.module_name,
                          "cached": built.cached, "seconds": round(built.seconds, 3),
                          "warnings": list(built.warnings), "log": str(built.log_path)},
                         indent=2))
        return 0
    print(f"{built.ko_path}  ({'cached' if built.cached else f'built in {built.seconds:.1f} s'})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from kmodlab.report import render_run, run_to_dict
    from kmodlab.runner import run_module

    kernel = _provision(args)
    built = _build(args, kernel)
    try:
        with _guest(args) as guest:
            run = run_module(guest, built, timeout=args.load_timeout,
                             command_timeout=args.command_timeout)
    except KernelCrash as exc:
        report = f"{exc.excerpt}\n{exc}"
        for line in built.source_lines(report):
            exc.add_note(f"in your source: {line}")
        for found in _refusals(built, kernel, [report]):
            exc.add_note(found.describe())
        raise
    texts = [text for phase in (run.load, run.unload) if phase is not None
             for text in (phase.log, phase.command.output)]
    explanations = _refusals(built, kernel, texts)
    if args.json:
        data = run_to_dict(run)
        data["explanations"] = [e.as_dict() for e in explanations]
        print(json.dumps(data, indent=2, default=str))
    else:
        print(render_run(run))
        for found in explanations:
            print(found.describe())
    if not run.ok:
        # The verdict again, last, where a CI log shows it (leaks name their sizes).
        print(f"kmodlab run: {built.module_name}: {run.verdict}", file=sys.stderr)
    return 0 if run.ok else 1


def _refusals(built, kernel, texts: list[str]) -> list:  # type: ignore[no-untyped-def]
    """The kernel's refusals in ``texts``, explained (kmodlab.refusals)."""
    from kmodlab.refusals import ModuleFacts, explain

    return explain(texts, ModuleFacts.read(built.ko_path, kernel.headers_dir))


def cmd_summary(args: argparse.Namespace) -> int:
    from kmodlab.summary import guest_summary

    with _guest(args) as guest:
        print(guest_summary(guest))
    return 0


# ----------------------------------------------------------------------------- plumbing
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kmodlab", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what kmodlab does")
    sub = parser.add_subparsers(dest="command", required=True)

    kernels = sub.add_parser("kernels", help="list and fetch Debian kernels")
    ksub = kernels.add_subparsers(dest="kernels_command", required=True)
    p = ksub.add_parser("list", help="series, arches, flavours; what is cached")
    p.add_argument("--json", action="store_true")
    p.add_argument("--offline", action="store_true", help="only what is cached; no apt look-up")
    p.set_defaults(func=cmd_kernels_list)
    p = ksub.add_parser("fetch", help="download a kernel and its headers into the cache, or "
                                      "verify (and repair) the cached one")
    add_target_options(p)
    p.add_argument("--deep", action="store_true",
                   help="verify every file's sha256, not only its size")
    p.set_defaults(func=cmd_kernels_fetch)
    p = ksub.add_parser("build", help="build a kernel from Debian's linux-source with config "
                                      "fragments (kconfig/), into the cache")
    add_target_options(p)
    p.add_argument("-j", "--jobs", type=positive_int, help="parallel compile jobs "
                   "(default: the machine's CPU count)")
    p.add_argument("--rebuild", action="store_true", help="build even if the cache holds it")
    p.add_argument("--json", action="store_true", help="print the kernel as JSON")
    p.set_defaults(func=cmd_kernels_build)
    p = ksub.add_parser("configs", help="the config fragments --config accepts, and what each "
                                        "sets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_kernels_configs)

    p = sub.add_parser("boot", help="interactive root shell in a guest; 'exit' powers off")
    _guest_args(p)
    p.set_defaults(func=cmd_boot)

    p = sub.add_parser("exec", help="boot a guest, run one command, print its output")
    _guest_args(p)
    p.add_argument("--timeout", type=positive_seconds, default=60.0,
                   help="seconds the command may take (default: %(default)s)")
    p.add_argument("command", nargs=argparse.REMAINDER,
                   help="after --: one shell line ('a | b'), or a command and its arguments "
                        "(each passed as one word)")
    p.set_defaults(func=cmd_exec)

    for name, helptext in (("build", "build a module family (or a module directory) for a kernel"),
                           ("run", "build, load, observe and unload a module in a guest")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("target", help="a family (kmalloc, kmem_cache, mempool, vmalloc, percpu, "
                                      "devres, pages) or a directory with your own module")
        p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                       help="family template parameter (repeatable), e.g. -p sizes=8,96,160")
        p.add_argument("module_args", nargs="*", metavar="-- k=v",
                       help="insmod parameters for your own module")
        p.add_argument("--module", metavar="NAME",
                       help="the .ko to use when your tree builds several")
        p.add_argument("--rebuild", action="store_true",
                       help="build even if the cache holds this build")
        p.add_argument("--werror", action="store_true",
                       help="a compiler or modpost warning fails the command")
        p.add_argument("--json", action="store_true")
        if name == "run":
            _guest_args(p)
            p.add_argument("--load-timeout", type=positive_seconds, default=60.0,
                           help="seconds insmod and rmmod may take each; beyond it the run "
                                "fails as a hang (default: %(default)s)")
            p.add_argument("--command-timeout", type=positive_seconds, default=30.0,
                           help="seconds each of kmodlab's own guest commands may take "
                                "(copying the module, reading /proc and the log; default: "
                                "%(default)s)")
        else:
            add_target_options(p)
        p.set_defaults(func=cmd_build if name == "build" else cmd_run)

    # Feature packages own their commands: each exposes register(subparsers).
    for module_name in FEATURE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        module.register(sub)

    p = sub.add_parser("summary", help="boot a guest and print what it sees (release, slabinfo, buddyinfo)")
    _guest_args(p)
    p.set_defaults(func=cmd_summary)
    return parser


def _sigterm_as_exit(signum: int, frame: object) -> None:
    # Turn SIGTERM into SystemExit so every `with Guest(...)` block stops its QEMU on the way out.
    raise SystemExit(128 + signum)


def split_module_args(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """``kmodlab run DIR --arch arm64 -- quantum=4000``: what follows ``--`` after ``build`` or
    ``run`` is insmod's (argparse alone rejects it once options sit between)."""
    words = list(argv)
    command = next((i for i, w in enumerate(words) if not w.startswith("-")), None)
    if command is None or words[command] not in ("build", "run", "faults") or "--" not in words:
        return words, None
    cut = words.index("--")
    return words[:cut], words[cut + 1:]


def main(argv: Sequence[str] | None = None) -> int:
    words, module_args = split_module_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(words)
    if module_args is not None:
        args.module_args = [*(args.module_args or []), *module_args]
    if getattr(args, "command", None) and args.command and args.command[:1] == ["--"]:
        args.command = args.command[1:]
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="kmodlab: %(message)s")
    # The handlers are the command's own and are put back when it returns: main() also runs
    # inside other programs (a test calling it in-process must not leave a pytest session
    # whose SIGTERM only fails the current test instead of ending the run).
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _sigterm_as_exit)
    # Ctrl-C raises KeyboardInterrupt even when a parent shell started us with SIGINT ignored
    # (background jobs of non-interactive shells), so guests stop in order.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KmodlabError as exc:
        print(f"kmodlab: error: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", ()):
            print(f"kmodlab: {note}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kmodlab: interrupted", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
