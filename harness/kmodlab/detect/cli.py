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
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help="repeatable (default: x86_64 and arm64)")
    p.add_argument("--kernel", default=None,
                   help="series per arch (default: the registry's default for x86_64, 6.12 for "
                        "arm64: the ci tier's targets)")
    p.add_argument("--configs", default=f"{STOCK},slub-debug,debug-memory,debug-context",
                   help="columns, comma-separated: stock and config fragments "
                        "(default: %(default)s)")
    p.add_argument("--bug", action="append", metavar="CLASS",
                   help="repeatable (default: every class of the bugs family)")
    p.add_argument("--out", type=Path, default=Path("docs/detection.md"),
                   help="the Markdown report; its .json (results) and .svg (chart) go next "
                        "to it (default: %(default)s)")
    p.set_defaults(func=cmd_detect)


def _series(arch: str, given: str | None) -> str:
    from kmodlab import registry

    if given:
        return given
    return registry.default_target().kernel if arch == "x86_64" else "6.12"


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
        kernels = []
        for arch in args.arch or ["x86_64", "arm64"]:
            for config in configs:
                target = registry.target(arch, _series(arch, args.kernel), None,
                                         None if config == STOCK else config)
                kernels.append(provision_target(target))
        started = time.strftime("%Y-%m-%d")

        def show(cell: Cell) -> None:
            print(f"{cell.arch} {cell.column:14} {cell.bug:26} {cell.outcome:7} "
                  f"{cell.by or '-'} {cell.line} ({cell.seconds:.0f} s)", file=sys.stderr,
                  flush=True)

        cells = measure(kernels, bugs, report=show)
        command = "kmodlab detect --measure " + " ".join(
            [*(f"--arch {a}" for a in args.arch or []), f"--configs {args.configs}",
             *(f"--bug {b}" for b in args.bug or [])])
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"measured": started, "command": command,
                                       "cells": [c.as_dict() for c in cells]}, indent=1) + "\n")
    elif not results.is_file():
        raise ConfigError(f"no stored results at {results}: run kmodlab detect --measure first")
    data = json.loads(results.read_text())
    cells = [Cell(**c) for c in data["cells"]]
    args.out.write_text(render_markdown(cells, measured=data["measured"],
                                        command=data["command"]))
    args.out.with_suffix(".svg").write_text(render_svg(cells))
    print(f"wrote {args.out}, {args.out.with_suffix('.svg')} and {results}")
    return 0
