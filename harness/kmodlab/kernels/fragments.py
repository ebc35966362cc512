"""Kernel config fragments (``kconfig/<name>.config``): what ``--config NAMES`` asks for.

A fragment is ``required.config``'s syntax (``CONFIG_X=value  # why``) plus three kinds of line:

* ``boot: PARAM  # why``: a kernel parameter the fragment needs at boot (``page_owner=on``);
* ``arches: A B`` / ``series: S T``: the only arches or series the fragment applies to, so a
  combination that cannot work is refused with the fragment's own words, before any build;
* an option may end with ``only=A,S`` (arch names and/or series) to apply only there, when an
  option exists on some arches only (6.1's lib/Kconfig.debug: FAULT_INJECTION_STACKTRACE_FILTER
  ``depends on !X86_64``).

A fragment with ``CONFIG_`` lines needs a kernel built from source (kmodlab.kernels.kbuild); one
with only ``boot:`` lines applies to Debian's stock kernels as they are.  Fragments combine:
``debug-memory,fault-injection`` is one kernel; two fragments that set one option to different
values are refused, naming both lines.  Names are kept sorted, so one set has one spelling
(and one cache entry).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kmodlab.errors import ConfigError
from kmodlab.kernels.kconfig_check import KCONFIG_DIR, Requirement

_OPTION = re.compile(r"^(?P<option>CONFIG_[A-Za-z0-9_]+)=(?P<value>\S+)"
                     r"(?:\s+only=(?P<only>[A-Za-z0-9_.,]+))?\s*(?:#\s*(?P<why>.*))?$")
_DIRECTIVE = re.compile(r"^(?P<key>boot|arches|series):\s*(?P<value>[^#]*?)\s*(?:#\s*(?P<why>.*))?$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")

RESERVED = ("required", "build-base")
"""Files in kconfig/ that are not fragments (with ``<arch>.config`` and ``build-<arch>.config``)."""


@dataclass(frozen=True)
class FragmentOption:
    requirement: Requirement           # option, the one value it must have, why, file:line
    only: tuple[str, ...] = ()         # arches and/or series it applies to; () = everywhere

    def applies(self, arch: str, series: str) -> bool:
        if not self.only:
            return True
        arches = [w for w in self.only if not w[:1].isdigit()]
        serieses = [w for w in self.only if w[:1].isdigit()]
        return (not arches or arch in arches) and (not serieses or series in serieses)


@dataclass(frozen=True)
class BootParam:
    param: str
    why: str
    where: str


@dataclass(frozen=True)
class Fragment:
    name: str
    path: Path
    options: tuple[FragmentOption, ...] = ()
    boot: tuple[BootParam, ...] = ()
    arches: tuple[str, ...] = ()       # () = every arch
    series: tuple[str, ...] = ()       # () = every series

    @property
    def needs_build(self) -> bool:
        return bool(self.options)

    def refusal(self, arch: str, series: str) -> str | None:
        """Why this fragment cannot apply to (arch, series), or None."""
        if self.arches and arch not in self.arches:
            return (f"config fragment '{self.name}' is for {', '.join(self.arches)} only, not "
                    f"{arch} ({self.path.name})")
        if self.series and series not in self.series:
            return (f"config fragment '{self.name}' is for kernel {', '.join(self.series)} only, "
                    f"not {series} ({self.path.name})")
        return None


def parse_fragment(name: str, text: str, path: Path) -> Fragment:
    """One fragment file; a line that is none of the known forms is a ConfigError at file:line."""
    options: list[FragmentOption] = []
    boot: list[BootParam] = []
    arches: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"{path}:{lineno}"
        if not line or line.startswith("#"):
            continue
        if m := _OPTION.match(line):
            if "|" in m["value"]:
                raise ConfigError(f"{where}: a fragment sets one value, not {m['value']!r}")
            only = tuple(w for w in (m["only"] or "").split(",") if w)
            options.append(FragmentOption(
                Requirement(m["option"], (m["value"],), (m["why"] or "").strip(), where), only))
        elif (m := _DIRECTIVE.match(line)) and m["value"]:
            if m["key"] == "boot":
                boot.append(BootParam(m["value"], (m["why"] or "").strip(), where))
            elif m["key"] == "arches":
                arches = tuple(m["value"].split())
            else:
                series = tuple(m["value"].split())
        else:
            raise ConfigError(f"{where}: cannot read {raw!r}; expected CONFIG_X=value [only=...] "
                              "[# why], boot: PARAM [# why], arches: A B or series: S T")
    return Fragment(name, path, tuple(options), tuple(boot), arches, series)


def available(directory: Path = KCONFIG_DIR) -> list[str]:
    """The fragment names in ``directory`` (every .config but the requirement/base files)."""
    from kmodlab.registry import arch_names

    skip = set(RESERVED) | set(arch_names()) | {f"build-{a}" for a in arch_names()}
    return sorted(p.stem for p in directory.glob("*.config") if p.stem not in skip)


def split_names(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"b,a"`` or ``["a", "b"]`` -> ``("a", "b")``: sorted, duplicates dropped."""
    if names is None:
        return ()
    items = names.split(",") if isinstance(names, str) else [
        part for item in names for part in str(item).split(",")]
    return tuple(sorted({item.strip() for item in items if item.strip()}))


def load_fragments(names: str | Iterable[str] | None,
                   directory: Path = KCONFIG_DIR) -> tuple[Fragment, ...]:
    """The named fragments; an unknown name is a ConfigError listing the ones there are."""
    out = []
    for name in split_names(names):
        path = directory / f"{name}.config"
        if not _NAME.match(name) or name not in available(directory):
            raise ConfigError(f"unknown kernel config fragment '{name}'; kmodlab has "
                              f"{', '.join(available(directory))} (kconfig/*.config)")
        out.append(parse_fragment(name, path.read_text(), path))
    return tuple(out)


@dataclass(frozen=True)
class Composition:
    """Fragments applied to one (arch, series): the options a build must set, the boot
    parameters, and whether a build from source is needed at all."""

    names: tuple[str, ...]
    options: tuple[Requirement, ...] = ()
    boot: tuple[str, ...] = ()
    fragments: tuple[Fragment, ...] = field(default=(), repr=False)

    @property
    def needs_build(self) -> bool:
        return bool(self.options)

    @property
    def label(self) -> str:
        """``debug-memory+fault-injection``: for release names and cache entries."""
        return "+".join(self.names)


def compose(names: str | Iterable[str] | None, arch: str, series: str,
            directory: Path = KCONFIG_DIR) -> Composition:
    """Combine fragments for (arch, series); refuse what cannot apply, or contradicts itself."""
    fragments = load_fragments(names, directory)
    refusals = [why for f in fragments if (why := f.refusal(arch, series))]
    if refusals:
        raise ConfigError("; ".join(refusals))
    chosen: dict[str, Requirement] = {}
    for fragment in fragments:
        for item in fragment.options:
            if not item.applies(arch, series):
                continue
            req = item.requirement
            if req.option in chosen and chosen[req.option].allowed != req.allowed:
                other = chosen[req.option]
                raise ConfigError(f"config fragments disagree on {req.option}: "
                                  f"{other.allowed[0]} at {other.where}, {req.allowed[0]} at "
                                  f"{req.where}")
            chosen[req.option] = req
    boot = tuple(dict.fromkeys(p.param for f in fragments for p in f.boot))
    return Composition(tuple(f.name for f in fragments), tuple(chosen.values()), boot,
                       fragments)


__all__ = ["BootParam", "Composition", "Fragment", "FragmentOption", "available", "compose",
           "load_fragments", "parse_fragment", "split_names"]
