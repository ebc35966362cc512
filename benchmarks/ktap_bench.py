#!/usr/bin/env python3
"""KTAP parsing benchmark: prints figures, asserts nothing.

Generates KTAP text with N results (20,000 by default) in several shapes and times kmodlab's
parser (``parse_ktap`` followed by ``ktap_verdict``, what the runner does with a phase's log):

* ``flat``    one document, N results, each after a ``# name: key=value`` diagnostic;
* ``dmesg``   the same with ``[    1.234567] `` log prefixes, as kmodlab reads it from dmesg;
* ``suites``  KUnit style: N/100 suites (``KTAP version 1`` / ``# Subtest:`` / plan) of 100 cases;
* ``nested``  three levels: suites of parameterised tests of 10 cases each;
* ``crash``   ``suites`` cut off in the middle, as a kernel crash leaves it.

With ``--kunit-tool PATH`` (a folder holding the kernel's tools/testing/kunit/kunit_parser.py and
kunit_printer.py, e.g. from a kernel tree or Debian's linux-source tarball) it also times
kunit_tool's ``parse_run_tests`` on the same lines and prints both parsers' status and counts, so
a difference in verdict shows next to the timing.  kunit_tool is only imported from PATH, never
shipped with kmodlab.

``--kmodlab-ktap FILE`` times another revision of kmodlab's parser (e.g. ``git show
HEAD~1:harness/kmodlab/observe/ktap.py > /tmp/old_ktap.py``); a revision without ``ktap_verdict``
is timed with ``[doc.ok for doc in docs]`` as its verdict.

Usage: .venv/bin/python benchmarks/ktap_bench.py [--results 20000] [--repeat 3]
       [--shapes flat,dmesg,suites,nested,crash] [--kunit-tool /path/to/tools/testing/kunit]
       [--kmodlab-ktap FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

SHAPES = ("flat", "dmesg", "suites", "nested", "crash")


def _case(i: int) -> tuple[str, str]:
    """Diagnostic and result line (without indentation or number) of case i."""
    name = f"case_{i}"
    diag = f"# {name}: size={i % 4096} ksize={(i % 4096) | 7} addr=0x{i:x}"
    if i % 97 == 0:
        return diag, f"not ok {{n}} {name}"
    if i % 89 == 0:
        return diag, f"ok {{n}} {name} # SKIP not here"
    return diag, f"ok {{n}} {name}"


def gen_flat(n: int) -> list[str]:
    lines = ["KTAP version 1", "# kmodlab: module=kml_bench family=bench phase=load", f"1..{n}"]
    for i in range(1, n + 1):
        diag, result = _case(i)
        lines += [diag, result.format(n=i)]
    return lines


def gen_dmesg(n: int) -> list[str]:
    return [f"[{1 + i / 1e6:12.6f}] {line}" for i, line in enumerate(gen_flat(n))]


def gen_suites(n: int, per_suite: int = 100, cut_at: int | None = None) -> list[str]:
    suites = max(1, n // per_suite)
    lines = ["KTAP version 1", f"1..{suites}"]
    i = 0
    for s in range(1, suites + 1):
        lines += ["    KTAP version 1", f"    # Subtest: suite_{s}", f"    1..{per_suite}"]
        failed = False
        for c in range(1, per_suite + 1):
            i += 1
            if cut_at is not None and i == cut_at:
                lines.append("BUG: kernel NULL pointer dereference, address: 0000000000000000")
                return lines
            diag, result = _case(i)
            failed |= result.startswith("not ok")
            lines += ["    " + diag, "    " + result.format(n=c)]
        lines += [f"# suite_{s}: pass:{per_suite} fail:0 skip:0 total:{per_suite}",
                  f"{'not ok' if failed else 'ok'} {s} suite_{s}"]
    return lines


def gen_nested(n: int, per_param: int = 10, params: int = 10) -> list[str]:
    suites = max(1, n // (per_param * params))
    lines = ["KTAP version 1", f"1..{suites}"]
    i = 0
    for s in range(1, suites + 1):
        lines += ["    KTAP version 1", f"    # Subtest: suite_{s}", f"    1..{params}"]
        suite_failed = False
        for p in range(1, params + 1):
            lines += ["        KTAP version 1", f"        # Subtest: param_{s}_{p}",
                      f"        1..{per_param}"]
            failed = False
            for c in range(1, per_param + 1):
                i += 1
                diag, result = _case(i)
                failed |= result.startswith("not ok")
                lines += ["        " + diag, "        " + result.format(n=c)]
            suite_failed |= failed
            lines.append(f"    {'not ok' if failed else 'ok'} {p} param_{s}_{p}")
        lines.append(f"{'not ok' if suite_failed else 'ok'} {s} suite_{s}")
    return lines


def generate(shape: str, n: int) -> list[str]:
    if shape == "flat":
        return gen_flat(n)
    if shape == "dmesg":
        return gen_dmesg(n)
    if shape == "suites":
        return gen_suites(n)
    if shape == "nested":
        return gen_nested(n)
    if shape == "crash":
        return gen_suites(n, cut_at=n // 2 + 50)       # in the middle of a suite
    raise ValueError(shape)


# -- the parsers under test

def load_kmodlab(path: str | None) -> ModuleType:
    if path is None:
        from kmodlab.observe import ktap
        return ktap
    spec = importlib.util.spec_from_file_location("kmodlab_ktap_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def kmodlab_runner(ktap: ModuleType) -> Callable[[str], tuple[str, dict[str, int]]]:
    verdict_of = getattr(ktap, "ktap_verdict", None)

    def run(text: str) -> tuple[str, dict[str, int]]:
        docs = ktap.parse_ktap(text)
        if verdict_of is None:                      # an older revision: no counts
            ok = all(doc.ok for doc in docs)
            return ("ok" if ok and docs else "not ok"), {}
        v = verdict_of(docs)
        return v.status, {"passed": v.passed, "failed": v.failed, "skipped": v.skipped,
                          "crashed": v.crashed, "errors": v.errors}
    return run


def kunit_runner(folder: str) -> Callable[[str], tuple[str, dict[str, int]]]:
    sys.path.insert(0, str(Path(folder).resolve()))
    import kunit_parser  # type: ignore[import-not-found]
    printer: Any = None
    if "printer" in inspect.signature(kunit_parser.parse_run_tests).parameters:
        import kunit_printer  # type: ignore[import-not-found]
        printer = kunit_printer.null_printer
    limit = sys.getrecursionlimit()

    def run(text: str) -> tuple[str, dict[str, int]]:
        lines = text.splitlines()
        sys.setrecursionlimit(max(limit, 10_000))
        try:
            if printer is not None:
                test = kunit_parser.parse_run_tests(lines, printer)
            else:                                   # older kunit_tool prints to stdout
                with contextlib.redirect_stdout(io.StringIO()):
                    test = kunit_parser.parse_run_tests(lines)
        finally:
            sys.setrecursionlimit(limit)
        counts = getattr(test, "counts", None)
        got = {} if counts is None else {
            "passed": counts.passed, "failed": counts.failed, "skipped": counts.skipped,
            "crashed": counts.crashed, "errors": counts.errors}
        return test.status.name, got
    return run


def best_of(run: Callable[[str], Any], text: str, repeat: int) -> tuple[float, Any]:
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run(text)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _counts(c: dict[str, int]) -> str:
    return " ".join(f"{k[0]}={v}" for k, v in c.items()) if c else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=int, default=20_000, help="results per input (20000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept (3)")
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"comma list of {SHAPES}")
    ap.add_argument("--kunit-tool", metavar="PATH",
                    help="folder with kunit_parser.py (tools/testing/kunit of a kernel tree)")
    ap.add_argument("--kmodlab-ktap", metavar="FILE",
                    help="time this ktap.py instead of the installed kmodlab.observe.ktap")
    args = ap.parse_args(argv)

    kmodlab = kmodlab_runner(load_kmodlab(args.kmodlab_ktap))
    kunit = kunit_runner(args.kunit_tool) if args.kunit_tool else None

    print(f"kmodlab parser: {args.kmodlab_ktap or 'kmodlab.observe.ktap (installed)'}")
    if args.kunit_tool:
        print(f"kunit_tool:     {args.kunit_tool}")
    print(f"best of {args.repeat} run(s); Python {sys.version.split()[0]}\n")
    head = f"{'shape':8s} {'lines':>7s} {'kmodlab s':>10s}"
    if kunit:
        head += f" {'kunit_tool s':>12s} {'ratio':>6s}"
    print(head + "  verdicts")
    for shape in args.shapes.split(","):
        text = "\n".join(generate(shape, args.results)) + "\n"
        n_lines = text.count("\n")
        t_k, (status, counts) = best_of(kmodlab, text, args.repeat)
        row = f"{shape:8s} {n_lines:7d} {t_k:10.3f}"
        verdicts = f"kmodlab {status} {_counts(counts)}"
        if kunit:
            t_u, (u_status, u_counts) = best_of(kunit, text, args.repeat)
            row += f" {t_u:12.3f} {t_k / t_u:6.2f}"
            verdicts += f" | kunit_tool {u_status} {_counts(u_counts)}"
        print(f"{row}  {verdicts}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
