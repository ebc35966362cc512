"""``kmodlab model | explain | claims | chart``: the claims package's commands.

:func:`register` is called by kmodlab.cli with its subparsers.  Each command is a few calls
into the modules next to this one; the model commands never boot or download anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kmodlab import registry
from kmodlab.cliargs import add_matrix_options, add_target_options, positive_int, target_of
from kmodlab.errors import ConfigError


# ----------------------------------------------------------------------------- arguments
def size_arg(text: str) -> int:
    """A size in bytes: 160, 0x1000, 4K, 2MiB."""
    from kmodlab.modules.parsing import parse_int

    try:
        value = parse_int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _model_options(p: argparse.ArgumentParser) -> None:
    add_target_options(p)   # the flavour is that of the cached kernel whose .config is used
    p.add_argument("--cpus", type=positive_int, default=1, help="CPUs the kernel sees; changes slab "
                   "orders (default: %(default)s)")
    p.add_argument("--defaults", action="store_true",
                   help="ignore a cached kernel's .config; use the model's Debian defaults")


def _cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", type=size_arg, required=True, help="object size in bytes")
    p.add_argument("--align", type=size_arg, default=0, help="align argument (default 0)")
    p.add_argument("--flags", default="", help="SLAB_* flags joined with '|', e.g. "
                   "'SLAB_HWCACHE_ALIGN|SLAB_ACCOUNT' (default none)")
    p.add_argument("--ctor", action="store_true", help="the cache has a constructor")
    p.add_argument("--usersize", type=size_arg, default=0,
                   help="usercopy region size (kmem_cache_create_usercopy), default 0")


def _target(args: argparse.Namespace):
    from kmodlab.claims.target import model_target

    target = target_of(args)
    return model_target(target.arch, target.kernel, ncpus=args.cpus,
                        flavour=target.flavour_name, use_cache=not args.defaults,
                        config=target.config or ())


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


# ----------------------------------------------------------------------------- model
def cmd_model_ksize(args: argparse.Namespace) -> int:
    from kmodlab.claims.predict import ksize_answer

    _print_json(ksize_answer(_target(args), args.size, args.gfp))
    return 0


def cmd_model_cache(args: argparse.Namespace) -> int:
    from kmodlab.claims.predict import cache_answer

    _print_json(cache_answer(_target(args), args.size, args.align, args.flags, args.ctor,
                             args.usersize))
    return 0


def cmd_model_vmalloc(args: argparse.Namespace) -> int:
    from kmodlab.claims.predict import vmalloc_answer

    _print_json(vmalloc_answer(_target(args), args.size))
    return 0


def cmd_model_pages(args: argparse.Namespace) -> int:
    from kmodlab.claims.predict import pages_answer

    _print_json(pages_answer(_target(args), args.order))
    return 0


def cmd_model_capture(args: argparse.Namespace) -> int:
    from kmodlab.claims.captures import capture_from_guest
    from kmodlab.guest import Guest, GuestOptions
    from kmodlab.kernels import provision_target

    kernel = provision_target(target_of(args))
    with Guest(kernel, GuestOptions(cpus=args.cpus)) as guest:
        where = capture_from_guest(guest, kernel)
    print(f"stored /proc/slabinfo and /sys/kernel/slab links of {kernel.release} in {where}")
    return 0


# ----------------------------------------------------------------------------- explain
def cmd_explain_kmalloc(args: argparse.Namespace) -> int:
    from kmodlab.claims.explain import explain_kmalloc

    print(explain_kmalloc(_target(args), args.size, args.gfp))
    return 0


def cmd_explain_cache(args: argparse.Namespace) -> int:
    from kmodlab.claims.explain import explain_cache

    print(explain_cache(_target(args), args.size, args.align, args.flags, args.ctor))
    return 0


# ----------------------------------------------------------------------------- claims
def selected_targets(arches: Sequence[str] | None, kernels: Sequence[str] | None, cpus: int,
                     flavour: str | None = None):
    """Model targets of the registry's matrix (or the given subsets), arch-major."""
    from kmodlab.claims.target import model_target
    from kmodlab.model.errors import ModelError

    out, left_out = [], []
    for t in registry.matrix(arches, kernels, flavour):
        try:
            out.append(model_target(t.arch, t.kernel, ncpus=cpus, flavour=t.flavour_name))
        except (ConfigError, ModelError) as exc:
            if arches and kernels:
                raise            # asked for by name: refused, with the model's reason
            left_out.append(f"{t.label}: {exc}")
    for why in left_out:
        _stderr(f"left out (the model does not cover it): {why}")
    if not out:
        raise ConfigError("the model covers none of the kernels asked for:\n  "
                          + "\n  ".join(left_out))
    return out


def _stderr(message: str) -> None:
    print(f"kmodlab: {message}", file=sys.stderr, flush=True)


def gather_observations(targets, probes, *, measure: bool, cached: bool, cpus: int,
                        flavour: str) -> dict[str, Any]:
    """Observations by target label: measured now (and stored), or loaded from the store."""
    from kmodlab.claims import observations as store

    out: dict[str, Any] = {}
    if not (measure or cached):
        return out
    for t in targets:
        if measure:
            out[t.label] = measure_and_store(t, probes, cpus, flavour)
        elif t.release and (obs := store.load(t.release)) is not None:
            out[t.label] = obs
        else:
            _stderr(f"no stored measurements of {t.label}; run with --measure")
    return out


def measure_and_store(target, probes, cpus: int, flavour: str):
    """Boot the target's kernel, run ``probes``, merge into its stored observations."""
    import time

    from kmodlab.claims import observations as store
    from kmodlab.claims.measure import measure_kernel
    from kmodlab.claims.observations import Observations
    from kmodlab.errors import ConfigError
    from kmodlab.guest import GuestOptions
    from kmodlab.kernels import provision

    # One guest per (kernel config, guest memory, boot parameters, CPUs): Debian's kernel in
    # the default guest first.
    groups: dict[tuple[tuple[str, ...], int | None, tuple[str, ...], int | None], list] = {}
    for probe in probes:
        key = (probe.config, probe.memory_mb, probe.cmdline, probe.cpus)
        groups.setdefault(key, []).append(probe)
    kernel = provision(target.arch, target.series, flavour=flavour)
    plain = groups.pop(((), None, (), None), [])
    if plain:
        _stderr(f"measuring {target.label} ({kernel.release}): "
                f"{', '.join(p.name for p in plain)}")
        obs = measure_kernel(kernel, plain, GuestOptions(cpus=cpus), report=_stderr)
    else:
        obs = Observations(kernel.release, kernel.label, cpus,
                           time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    for (config, memory, cmdline, ncpus), group in groups.items():
        # Probes that need debugging options run on this series' kernel built with them.  Where
        # kmodlab cannot build that kernel (5.10 needs its release's compiler; no i386 build
        # settings), those claims are "not measured" with the reason: the others still are.
        try:
            built = provision(target.arch, target.series, flavour=flavour, config=config)
        except ConfigError as exc:
            for probe in group:
                obs.errors[probe.name] = str(exc)
            _stderr(f"{target.label}+{'+'.join(config)}: not measured: {exc}")
            continue
        where = ", ".join(w for w in ("+".join(config), f"{memory} MiB" if memory else "",
                                      " ".join(cmdline), f"{ncpus} CPUs" if ncpus else "")
                          if w)
        _stderr(f"measuring {target.label} ({where or 'default'}; {built.release}): "
                f"{', '.join(p.name for p in group)}")
        options = GuestOptions(cpus=ncpus or cpus, extra_cmdline=cmdline,
                               **({"memory_mb": memory} if memory else {}))
        obs.merge_probes(measure_kernel(built, group, options, report=_stderr))
    old = store.load(kernel.release)
    if old is not None and old.ncpus == obs.ncpus:
        # Keep what this run did not re-measure.
        for name in old.probes:
            if name not in obs.probes and name not in obs.errors:
                obs.probes[name] = old.probes[name]
                obs.status[name] = old.status.get(name, {})
                if name in old.events:
                    obs.events[name] = old.events[name]
                if name in old.kernels:
                    obs.kernels[name] = old.kernels[name]
    store.save(obs)
    return obs


def _command_line(args: argparse.Namespace) -> str:
    parts = ["kmodlab claims"]
    if args.measure:
        parts.append("--measure")
    elif args.cached:
        parts.append("--cached")
    for a in args.arch or ():
        parts.append(f"--arch {a}")
    for k in args.kernel or ():
        parts.append(f"--kernel {k}")
    if args.flavour:
        parts.append(f"--flavour {args.flavour}")
    if args.cpus != 1:
        parts.append(f"--cpus {args.cpus}")
    for c in args.claim or ():
        parts.append(f"--claim {c}")
    if args.json:
        parts.append("--json")
    if args.out:
        parts.append(f"--out {args.out}")
    return " ".join(parts)


def cmd_claims(args: argparse.Namespace) -> int:
    from kmodlab.claims.catalog import load_catalog
    from kmodlab.claims.evaluate import evaluate
    from kmodlab.claims.report import render_markdown, results_to_json

    catalog = load_catalog()
    claims = [catalog.claim(c) for c in args.claim] if args.claim else list(catalog.claims)
    targets = selected_targets(args.arch, args.kernel, args.cpus, args.flavour)
    observations = gather_observations(targets, catalog.probes_for(claims),
                                       measure=args.measure, cached=args.cached,
                                       cpus=args.cpus, flavour=args.flavour)
    results = evaluate(catalog, targets, observations, claims)
    if args.json:
        text = json.dumps(results_to_json(results, targets, observations), indent=2) + "\n"
    else:
        text = render_markdown(results, targets, observations, _command_line(args))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        _stderr(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    disagreements = [k for r in results for k in r.disagreements]
    return 1 if disagreements else 0


# ----------------------------------------------------------------------------- chart
def cmd_chart_waste(args: argparse.Namespace) -> int:
    from kmodlab.claims import observations as store
    from kmodlab.claims.catalog import load_catalog
    from kmodlab.claims.chart import render
    from kmodlab.claims.waste import measured_points, to_csv, waste_series

    targets = selected_targets(args.arch, args.kernel, args.cpus, args.flavour)
    series = [waste_series(t) for t in targets]
    points = []
    if args.measure:
        sweep = [p for p in load_catalog().probes.values() if p.name == "kmalloc_sweep"]
        for t in targets:
            points += measured_points(t, measure_and_store(t, sweep, args.cpus, args.flavour))
    elif not args.no_measured:
        for t in targets:
            obs = store.load(t.release) if t.release else None
            if obs is not None:
                points += measured_points(t, obs)
    out = render(series, points, Path(args.out))
    if args.csv:
        Path(args.csv).write_text(to_csv(series))
    wrong = [p for p in points if not p.agrees]
    _stderr(f"wrote {out}: {len(series)} model series, {len(points)} measured points"
            + (f", {len(wrong)} differ from the model" if wrong else
               ", all equal to the model" if points else
               " (none stored: run kmodlab claims --measure, or add --measure)"))
    return 1 if wrong else 0


# ----------------------------------------------------------------------------- wiring
def _register_model(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="the reference model's prediction for one request, "
                           "as JSON (no guest)")
    msub = model.add_subparsers(dest="model_command", required=True)
    p = msub.add_parser("ksize", help="ksize() and cache of kmalloc(SIZE)")
    p.add_argument("size", type=size_arg)
    p.add_argument("--gfp", default="GFP_KERNEL", help="GFP flags (default %(default)s)")
    _model_options(p)
    p.set_defaults(func=cmd_model_ksize)
    p = msub.add_parser("cache", help="slabinfo columns and merging of kmem_cache_create()")
    _cache_options(p)
    _model_options(p)
    p.set_defaults(func=cmd_model_cache)
    p = msub.add_parser("vmalloc", help="vmallocinfo line(s) and bookkeeping of vmalloc(SIZE)")
    p.add_argument("size", type=size_arg)
    _model_options(p)
    p.set_defaults(func=cmd_model_vmalloc)
    p = msub.add_parser("pages", help="an alloc_pages(ORDER) block")
    p.add_argument("order", type=int)
    _model_options(p)
    p.set_defaults(func=cmd_model_pages)
    p = msub.add_parser("capture", help="boot the kernel once and store its slabinfo, so "
                        "`model cache` can name the cache a new one merges into")
    _model_options(p)
    p.set_defaults(func=cmd_model_capture)


def _register_explain(sub: argparse._SubParsersAction) -> None:
    explain = sub.add_parser("explain", help="the model's reasoning in plain words, and how "
                             "the other kernels differ")
    esub = explain.add_subparsers(dest="explain_command", required=True)
    p = esub.add_parser("kmalloc", help="where kmalloc(SIZE) lands and why")
    p.add_argument("size", type=size_arg)
    p.add_argument("--gfp", default="GFP_KERNEL", help="GFP flags (default %(default)s)")
    _model_options(p)
    p.set_defaults(func=cmd_explain_kmalloc)
    p = esub.add_parser("cache", help="why kmem_cache_create() gets its geometry")
    _cache_options(p)
    _model_options(p)
    p.set_defaults(func=cmd_explain_cache)


def _register_claims(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("claims", help="textbook claims about the allocators, judged by the "
                       "model and (with --measure) on booted kernels",
                       description="Judge the claims of harness/kmodlab/claims/claims.yaml on every "
                       "kernel: by the model, and with --measure by modules run on booted "
                       "guests. Exit status 1 when a measurement disagrees with the model.")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--measure", action="store_true",
                     help="boot each kernel and run the probes (stores the results)")
    how.add_argument("--cached", action="store_true",
                     help="use the results stored by the last --measure")
    p.add_argument("--out", help="write the report here instead of stdout")
    p.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    add_matrix_options(p)
    p.add_argument("--claim", action="append", help="only this claim id (repeatable)")
    p.add_argument("--cpus", type=positive_int, default=1, help="guest CPUs (default %(default)s)")
    p.set_defaults(func=cmd_claims)


def _register_chart(sub: argparse._SubParsersAction) -> None:
    chart = sub.add_parser("chart", help="charts from the model (and stored measurements)")
    csub = chart.add_subparsers(dest="chart_command", required=True)
    p = csub.add_parser("waste", help="kmalloc internal waste by size, 1..8192, per kernel")
    p.add_argument("--out", default="docs/waste.png",
                   help=".png/.pdf (needs matplotlib) or .svg/.html (default %(default)s)")
    p.add_argument("--csv", help="also write the data as CSV here")
    p.add_argument("--measure", action="store_true",
                   help="boot each kernel and measure the kmalloc sweep first")
    p.add_argument("--no-measured", action="store_true", help="model lines only")
    add_matrix_options(p)
    p.add_argument("--cpus", type=positive_int, default=1)
    p.set_defaults(func=cmd_chart_waste)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``model``, ``explain``, ``claims`` and ``chart`` to kmodlab's subcommands."""
    _register_model(sub)
    _register_explain(sub)
    _register_claims(sub)
    _register_chart(sub)
