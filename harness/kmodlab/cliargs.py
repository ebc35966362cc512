"""The target options every command shares: ``--arch``, ``--kernel``, ``--flavour``.

One definition, so every command spells them alike and lists the same choices, taken from the
registry (kmodlab/registry/) rather than written into help texts.  Building the options reads
only the registry's names (:mod:`kmodlab.registry.names`, no YAML): every kmodlab invocation
builds every command's options, ``kmodlab --help`` included.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kmodlab.registry import names

if TYPE_CHECKING:
    from kmodlab.registry import Target


def _choices() -> tuple[str, str, str]:
    return (", ".join(names.arch_names()), ", ".join(names.series_names()),
            ", ".join(names.flavour_names()))


def add_target_options(p: argparse.ArgumentParser) -> None:
    """``--arch/--kernel/--flavour`` naming one target (defaults from the registry)."""
    arches, series, flavours = _choices()
    p.add_argument("--arch", default=names.default_arch(),
                   help=f"one of {arches} (default: %(default)s)")
    p.add_argument("--kernel", default=names.default_series(),
                   help=f"a series ({series}), latest (the newest) or an exact release such "
                        "as 6.1.0-56 (default: %(default)s)")
    p.add_argument("--flavour", help=f"one of {flavours} ({_flavour_default()})")
    p.add_argument("--config", metavar="NAMES", default="",
                   help="kernel config fragments from kconfig/, comma-separated (e.g. "
                        "debug-memory,fault-injection): a kernel built from Debian's source with "
                        "them, or boot parameters only (slub-debug) on Debian's kernel")


def add_matrix_options(p: argparse.ArgumentParser, what: str = "every") -> None:
    """Repeatable ``--arch/--kernel`` naming a matrix; each left out means every one known."""
    arches, series, flavours = _choices()
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help=f"repeatable; default: {what} arch ({arches})")
    p.add_argument("--kernel", action="append", metavar="KERNEL",
                   help=f"repeatable; default: {what} series ({series})")
    p.add_argument("--flavour", help=f"one of {flavours} ({_flavour_default()})")


def _flavour_default() -> str:
    return (f"default: {names.default_flavour()}, or the arch's own where Debian builds no "
            f"{names.default_flavour()} kernel")


def positive_seconds(text: str) -> float:
    """argparse type of a timeout: a number of seconds greater than zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return value


def positive_int(text: str) -> int:
    """argparse type of a count (CPUs, MiB, jobs): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be 1 or more")
    return value


def target_of(args: argparse.Namespace) -> Target:
    """The checked target of :func:`add_target_options` (a ConfigError names the choices)."""
    from kmodlab import registry

    return registry.target(args.arch, args.kernel, args.flavour,
                           getattr(args, "config", "") or None)


def matrix_of(args: argparse.Namespace) -> list[Target]:
    """The checked targets of :func:`add_matrix_options`."""
    from kmodlab import registry

    return registry.matrix(args.arch, args.kernel, args.flavour)
