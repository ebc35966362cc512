"""What a family check runs in the guest (a :class:`Probe`) and what it saw (an
:class:`Observation`), plus small readers for the module's KTAP output.

A probe is one module configuration.  Around it the check shrinks the slab caches whose counts
it compares (``kmem_cache_shrink()`` through ``/sys/kernel/slab/<cache>/shrink``, with
:func:`kmodlab.phases.shrink_slabs`: afterwards /proc/slabinfo's active_objs counts live objects
only, mm/slub.c:get_slabinfo()), and reads
what is only visible between the phases (sysfs links, /proc/zoneinfo).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kmodlab.modules.params.base import FamilyParams
from kmodlab.observe.ktap import KtapResult
from kmodlab.runner import ModuleRun, Phase, ProcSnapshot


@dataclass(frozen=True)
class Probe:
    """One module configuration of a family check.

    ``shrink`` names slab caches to shrink before the baseline and the held snapshot (missing
    ones are skipped: a module's own cache exists only while it is loaded).  ``before`` and
    ``between`` are shell commands whose output is kept, run before insmod and while the
    module is loaded, ``after`` once it is unloaded.  ``shared_memory`` reads the guest's
    shared memory (the host file behind its ivshmem BAR) while the module is loaded.
    ``tools`` are the kernel's own user-space tools (:mod:`kmodlab.guest_tools`) the commands
    run, installed in the guest before them.
    """

    family: str
    name: str
    params: tuple[str, ...] = ()
    shrink: tuple[str, ...] = ()
    before: Mapping[str, str] = field(default_factory=dict)
    between: Mapping[str, str] = field(default_factory=dict)
    after: Mapping[str, str] = field(default_factory=dict)
    shared_memory: bool = False
    tools: tuple[str, ...] = ()


@dataclass
class Observation:
    """A probe's module run and everything read around it.

    ``run.load.before`` is the baseline (taken right after the shrink), ``held`` the /proc
    snapshot while loaded (after a second shrink), ``released`` the snapshot after unload (after
    a third).  ``held``/``released`` are None when the module did not load or unload.
    """

    probe: Probe
    params: FamilyParams
    run: ModuleRun
    held: ProcSnapshot | None = None
    released: ProcSnapshot | None = None
    before: dict[str, str] = field(default_factory=dict)
    between: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    shared_memory: str | None = None
    """The shared memory while loaded, as :func:`kmodlab.observe.shared_memory.format_runs`
    text (None: not read, or the guest has none)."""

    @property
    def module(self) -> str:
        return self.run.built.module_name

    @property
    def baseline(self) -> ProcSnapshot:
        return self.run.load.before

    @property
    def load(self) -> Phase:
        return self.run.load

    @property
    def unload(self) -> Phase | None:
        return self.run.unload


def result(phase: Phase | None, test: str) -> KtapResult | None:
    """The KTAP result ``test`` of a phase, or None (no phase, or the module never printed it)."""
    if phase is None:
        return None
    try:
        return phase.result(test)
    except KeyError:
        return None


def values(phase: Phase | None, test: str) -> dict[str, Any]:
    """The ``key=value`` diagnostics of ``test`` (empty when the test is missing), without the
    document header's module=/family=/phase= that attach to a document's first test."""
    res = result(phase, test)
    if res is None:
        return {}
    named = res.values_by_name
    out: dict[str, Any] = {}
    for name in (None, test):
        out.update(named.get(name, {}))
    return out


def named_values(phase: Phase | None, name: str) -> dict[str, Any]:
    """Values of diagnostics called ``name`` wherever they attach (the module prints per-block
    lines like ``# alloc_pages_kernel_o4: free_...`` before one summary result)."""
    out: dict[str, Any] = {}
    if phase is None:
        return out
    for doc in phase.ktap:
        for _path, res in doc.walk():
            for d in res.diagnostics:
                if d.name == name and d.values:
                    out.update(d.values)
    return out


def int_list(value: Any) -> tuple[int, ...] | None:
    """``"3,7,5"`` (a per-order list the module printed) -> (3, 7, 5); None if absent/garbled."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value,)
    try:
        return tuple(int(x) for x in str(value).split(","))
    except ValueError:
        return None


@dataclass(frozen=True)
class SlabDump:
    """What mm/slab_common.c:kmem_dump_obj() printed for one pointer."""

    cache: str | None          # None: not slab memory (page allocator, vmalloc)
    offset: int | None         # the pointer's offset inside its object ("pointer offset")


_DUMP = re.compile(r"\bslab(?:/vmalloc)? (?P<cache>\S+)(?: \(kfence\))?(?: start \S+)?"
                   r"(?: data offset \d+)?(?: pointer offset (?P<off>\d+))?")


def slab_dump(phase: Phase | None, label: str) -> SlabDump | None:
    """The ``# <label>: object slab <cache> ... pointer offset <n>`` line (kml_diag_slab() in
    modules/common/kmodlab_ktap.h), or None when the module printed none."""
    if phase is None:
        return None
    for doc in phase.ktap:
        for _path, res in doc.walk():
            for d in res.diagnostics:
                if d.name != label:
                    continue
                text = d.text.split(":", 1)[1] if ":" in d.text else d.text
                if "not-slab" in text:
                    return SlabDump(None, None)
                m = _DUMP.search(text)
                if m:
                    off = m.group("off")
                    return SlabDump(m.group("cache"), int(off) if off is not None else None)
    return None
