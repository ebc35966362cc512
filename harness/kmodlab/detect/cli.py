"""``kmodlab detect``: the detection matrix (which detector catches which bug), measured."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kmodlab.errors import ConfigError

STOCK = "stock"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="which detector catches which bug: the bugs family on "
                                      "stock and debug kernels, measured")
    p.add_argument("--measure", action="store_true",
                   help="run every cell (otherwise re-render the stored results)")
    p.add_argument("--target", action="append", metavar="ARCH:SERIES",
                   help="repeatable, e.g. --target x86_64:6.1 --target arm64:6.12 (default: "
                        "every arch at the default series)")
    p.add_argument("--configs", default=f"{STOCK},slub-debug,debug-memory,debug-context",
                   help="columns, comma-separated: stock and config fragments "
                        "(default: %(default)s)")
    p.add_argument("--bug", action="append", metavar="CLASS",
                   help="repeatable (default: every class of the bugs family)")
    p.add_argument("--out", type=Path, default=Path("docs/detection.md"),
                   help="the Markdown report; its .json (results) and .svg (chart) go next "
                        "to it (default: %(default)s)")
    p.set_defaults(func=cmd_detect)


def cmd_detect(args: argparse.Namespace) -> int:
    from kmodlab.detect.matrix import Cell, measure
    from kmodlab.detect.render import render_markdown, render_svg

    results = args.out.with_suffix(".json")
    if args.measure:
        from kmodlab import registry
        from kmodlab.kernels import provision_target
        from kmodlab.modules.params.bugs import BUG_CLASSES

        bugs = args.bug or list(BUG_CLASSES)
        unknown = [b for b in bugs if b not in BUG_CLASSES]
        if unknown:
            raise ConfigError(f"unknown bug class(es) {', '.join(unknown)}; the bugs family has "
                              f"{', '.join(BUG_CLASSES)}")
        configs = [c.strip() for c in args.configs.split(",") if c.strip()]
        bases = ([registry.parse_target(t) for t in args.target] if args.target else
                 [registry.target(arch) for arch in registry.arch_names()])
        targets = [registry.target(base.arch, base.kernel, None,
                                   None if config == STOCK else config)
                   for base in bases for config in configs]
        # Provisioned (or built) one at a time, as the matrix reaches them: the first kernel's
        # cells run while a later one may still be building elsewhere.
        kernels = (provision_target(target) for target in targets)
        started = time.strftime("%Y-%m-%d")

        def show(cell: Cell) -> None:
            print(f"{cell.arch} {cell.column:14} {cell.bug:26} {cell.outcome:7} "
                  f"{cell.by or '-'} {cell.line} ({cell.seconds:.0f} s)", file=sys.stderr,
                  flush=True)

        cells = measure(kernels, bugs, report=show)
        command = "kmodlab detect --measure " + " ".join(
            [*(f"--target {t}" for t in args.target or []), f"--configs {args.configs}",
             *(f"--bug {b}" for b in args.bug or [])])
        # Cells measured now replace the stored ones of the same (bug, arch, config): one
        # column or one class can be measured again without re-running the matrix.
        merged: dict[tuple[str, str, str], dict] = {}
        commands = [command]
        if results.is_file():
            old = json.loads(results.read_text())
            merged = {(c["bug"], c["arch"], c["config"]): c for c in old["cells"]}
            commands = [*old.get("commands", [old.get("command", "")]), command]
        merged.update({(c.bug, c.arch, c.config): c.as_dict() for c in cells})
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"measured": started, "commands": commands,
                                       "cells": list(merged.values())}, indent=1) + "\n")
    elif not results.is_file():
        raise ConfigError(f"no stored results at {results}: run kmodlab detect --measure first")
    data = json.loads(results.read_text())
    cells = [Cell(**c) for c in data["cells"]]
    args.out.write_text(render_markdown(cells, measured=data["measured"],
                                        command="; ".join(data.get("commands") or
                                                          [data.get("command", "")])))
    args.out.with_suffix(".svg").write_text(render_svg(cells))
    print(f"wrote {args.out}, {args.out.with_suffix('.svg')} and {results}")
    return 0
