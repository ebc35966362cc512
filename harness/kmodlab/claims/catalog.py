"""Load ``claims.yaml``: the claims and the probes that measure them, checked on load.

A claim names a judge (in :mod:`kmodlab.claims.judges`) and the probes whose KTAP
values that judge reads; both must exist, so a typo fails here, naming the claim, and not
halfway through booting four kernels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kmodlab.errors import ConfigError

CATALOG = Path(__file__).with_name("claims.yaml")
VERDICTS = ("true", "false", "depends", "dated")


@dataclass(frozen=True)
class Probe:
    """One module run per kernel: a family with ``-p`` parameters, or kmodlab's own
    measurement module (``module``) with insmod arguments.  ``config`` names kconfig/
    fragments: the probe runs on the series' kernel built with them (e.g. debug-context for
    claims only a debugging option can observe), not on Debian's."""

    name: str
    what: str
    family: str | None = None
    params: tuple[str, ...] = ()
    module: str | None = None
    args: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    arm: str | None = None          # "failslab": failslab armed for make_it_fail tasks first
    memory_mb: int | None = None    # a guest of this much memory (i386's HighMem starts at 879 MiB)
    cmdline: tuple[str, ...] = ()   # boot parameters of that guest (crashkernel=, cma=)
    cpus: int | None = None         # a guest with this many CPUs (per-CPU data needs two or more)
    # caches the kernel's slabinfo tool reports on while the module is loaded (pseudo tests
    # "slabinfo <cache>", see kmodlab.claims.measure.run_with_slabinfo)
    slabinfo: tuple[str, ...] = ()
    # shell commands run in the guest before the module loads and after it unloads (e.g. the
    # pressure probe's page cache: a file written on an ext2 RAM disk)
    setup: tuple[str, ...] = ()
    teardown: tuple[str, ...] = ()
    # guest tools (kmodlab.guest_tools) the setup commands run, installed before them
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: str
    judge: str
    evaluate: str
    measure_how: str
    probes: tuple[str, ...]
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    claims: tuple[Claim, ...]
    probes: dict[str, Probe]

    def claim(self, claim_id: str) -> Claim:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise ConfigError(f"no claim {claim_id!r}; known: {', '.join(c.id for c in self.claims)}")

    def probes_for(self, claims: tuple[Claim, ...] | list[Claim]) -> list[Probe]:
        """The probes these claims read, each once, in catalog order."""
        wanted = {p for c in claims for p in c.probes}
        return [p for name, p in self.probes.items() if name in wanted]


def _probe(name: str, data: dict[str, Any]) -> Probe:
    family, module = data.get("family"), data.get("module")
    if (family is None) == (module is None):
        raise ConfigError(f"claims.yaml: probe {name!r} needs exactly one of 'family' or 'module'")
    config = tuple(str(c) for c in data.get("config") or ())
    if config:
        from kmodlab.kernels.fragments import available

        unknown = [c for c in config if c not in available()]
        if unknown:
            raise ConfigError(f"claims.yaml: probe {name!r} names unknown kconfig fragment(s) "
                              f"{unknown}; known: {', '.join(available())}")
    arm = data.get("arm")
    if arm not in (None, "failslab"):
        raise ConfigError(f"claims.yaml: probe {name!r}: arm must be failslab, not {arm!r}")
    if arm and "fault-injection" not in config:
        raise ConfigError(f"claims.yaml: probe {name!r} arms failslab: its config must "
                          "include fault-injection")
    memory = data.get("memory_mb")
    if memory is not None and (not isinstance(memory, int) or not 128 <= memory <= 16384):
        raise ConfigError(f"claims.yaml: probe {name!r}: memory_mb must be 128..16384 MiB, not "
                          f"{memory!r}")
    cmdline = tuple(str(w) for w in data.get("cmdline") or ())
    if any(not w or any(c.isspace() for c in w) for w in cmdline):
        raise ConfigError(f"claims.yaml: probe {name!r}: each cmdline entry is one kernel "
                          f"parameter without spaces, not {list(cmdline)}")
    cpus = data.get("cpus")
    if cpus is not None and (not isinstance(cpus, int) or not 1 <= cpus <= 64):
        raise ConfigError(f"claims.yaml: probe {name!r}: cpus must be 1..64, not {cpus!r}")
    slabinfo = tuple(str(c) for c in data.get("slabinfo") or ())
    if any(not re.fullmatch(r"[A-Za-z0-9_.:-]+", c) for c in slabinfo):
        raise ConfigError(f"claims.yaml: probe {name!r}: slabinfo lists cache names, not "
                          f"{list(slabinfo)}")
    tools = tuple(str(t) for t in data.get("tools") or ())
    from kmodlab.guest_tools import TOOLS

    if unknown_tools := [t for t in tools if t not in TOOLS]:
        raise ConfigError(f"claims.yaml: probe {name!r}: unknown guest tool(s) {unknown_tools};"
                          f" known: {', '.join(TOOLS)}")
    return Probe(name, str(data.get("what", "")), family, tuple(data.get("params") or ()),
                 module, tuple(str(a) for a in data.get("args") or ()), config, arm, memory,
                 cmdline, cpus, slabinfo, tuple(str(c) for c in data.get("setup") or ()),
                 tuple(str(c) for c in data.get("teardown") or ()), tools)


def _claim(data: dict[str, Any], probes: dict[str, Probe], judges: set[str]) -> Claim:
    cid = data.get("id", "?")
    missing = [k for k in ("id", "statement", "source", "judge", "evaluate", "measure")
               if k not in data]
    if missing:
        raise ConfigError(f"claims.yaml: claim {cid!r} lacks {', '.join(missing)}")
    if data["judge"] not in judges:
        raise ConfigError(f"claims.yaml: claim {cid!r} names judge {data['judge']!r}; known: "
                          f"{', '.join(sorted(judges))}")
    measure = data["measure"]
    names = tuple(measure.get("probes") or ())
    unknown = [n for n in names if n not in probes]
    if unknown:
        raise ConfigError(f"claims.yaml: claim {cid!r} reads unknown probe(s) {unknown}; "
                          f"known: {', '.join(probes)}")
    return Claim(str(data["id"]), str(data["statement"]), str(data["source"]),
                 str(data["judge"]), str(data["evaluate"]), str(measure.get("how", "")), names,
                 dict(data.get("args") or {}))


def load_catalog(path: Path = CATALOG) -> Catalog:
    """Parse and check the catalog (default: the ``claims.yaml`` next to this module)."""
    from kmodlab.claims.judges import JUDGES

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the claims catalog {path}: {exc}") from None
    probes = {name: _probe(name, p) for name, p in (data.get("probes") or {}).items()}
    claims = tuple(_claim(c, probes, set(JUDGES)) for c in data.get("claims") or ())
    ids = [c.id for c in claims]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"claims.yaml: duplicate claim ids {sorted(dupes)}")
    return Catalog(claims, probes)
