"""What check expressions see: read-only views over observations and the reference model.

Names available in ``expect`` / ``model`` expressions (docs/labs.md lists them with examples):

=================  ==========================================================================
``size``...        the student's parameters (also ``params.size``) and ``derived`` values
``ktap.T.k``       value ``k`` of KTAP test point ``T`` (``ktap.T.ok``, ``ktap.T.status``)
``before``         /proc snapshot before insmod; ``loaded`` right after it; ``after`` after
                   rmmod; plus every ``observe: NAME`` step.  Each has ``.slab["name"]``
                   (slabinfo columns), ``.buddy["Normal"]`` (counts per order),
                   ``.free_pages``, ``.meminfo.Percpu`` (kB), ``.vmalloc`` (areas whose
                   caller is the lab module: ``count``, ``pages``, ``bytes``),
                   ``.vmalloc_all`` (every vmalloc area) and ``.ioremap`` (every ioremap area)
``shared``         the guest's shared memory (the ivshmem BAR's host file) while the module
                   was loaded: ``shared.size``, ``shared.runs`` (``(offset, word, count)`` of
                   every run of equal non-zero 32-bit words)
``read.N``         a ``read`` step's output: ``read.N.key`` for ``key=value`` tokens,
                   ``read.N.text``; ``run.N`` likewise plus ``run.N.exit``
``events.kind``    number of kernel reports of a kind (warning, oops, slab_leak...)
``model.f(...)``   the reference model (kmodlab.model.Model) for this kernel and guest
``ncpus``, ``page_size``, ``arch``, ``kernel``
=================  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kmodlab.labs.errors import EvaluationError
from kmodlab.labs.expr import SafeFunction, View
from kmodlab.observe import KtapDocument, KtapResult
from kmodlab.observe.ktap import convert_value

MODEL_METHODS = (
    "ksize", "kmalloc_cache_for", "kmalloc_size_roundup", "kmalloc_large_order",
    "kmalloc_waste", "kmalloc_type", "calculate_alignment", "slab_layout", "slab_size",
    "slab_order", "objects_per_slab", "slab_geometry", "kmem_cache", "slabs_for_objects",
    "slabinfo_after_alloc", "would_merge", "sysfs_alias_name", "get_order", "max_page_order",
    "pages_for_order", "bytes_for_order", "block_alignment", "is_pcp_order", "buddy_alloc",
    "buddy_free", "preferred_zone", "vmalloc", "vmalloc_pages", "vmallocinfo_size",
    "vmalloc_entries", "mempool_create", "mempool_alloc", "alloc_percpu", "percpu_sum",
    "percpu_meminfo_delta_kb", "devres_header_size", "devm_kmalloc", "constant",
    "populated_zones", "highmem_zones", "ioremap", "dma_alloc_coherent", "cma_total_kb",
)
MODEL_CONSTANTS = ("PAGE_SIZE", "KMALLOC_MIN_SIZE", "KMALLOC_MAX_CACHE_SIZE", "KMALLOC_MAX_SIZE",
                   "ncpus", "arch", "version")


class ModelView(View):
    """``model.<method>(...)``: with ``predictions`` the calls return Predictions (for
    ``model`` checks), else their predicted values (for ``expect`` and ``derived``)."""

    fields = MODEL_METHODS + MODEL_CONSTANTS

    def __init__(self, model: Any, predictions: bool) -> None:
        self._model = model
        self._predictions = predictions

    def describe(self) -> str:
        return "model"

    def expr_attr(self, name: str) -> Any:
        if name not in self.fields:
            raise EvaluationError(f"model has no '{name}'; known: {', '.join(self.fields)}")
        if name in MODEL_CONSTANTS:
            return getattr(self._model, name)
        method = getattr(self._model, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            args = tuple(tuple(a) if isinstance(a, list) else a for a in args)
            result = method(*args, **kwargs)
            if not self._predictions and hasattr(result, "rule") and hasattr(result, "value"):
                return result.value
            return result

        return SafeFunction(f"model.{name}", call)


class _MappingView(Mapping[str, Any]):
    def __init__(self, data: Mapping[str, Any], label: str) -> None:
        self._data = data
        self.label = label

    def __getitem__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class TestView(View):
    """One KTAP test point: its key=value diagnostics, plus ``ok`` and ``status``."""

    def __init__(self, result: KtapResult) -> None:
        self.result = result
        self.values = dict(result.values)

    def describe(self) -> str:
        return f"ktap.{self.result.name}"

    @property
    def fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("ok", "status", *self.values)

    def expr_attr(self, name: str) -> Any:
        if name == "ok":
            return self.result.status == "pass"
        if name == "status":
            return self.result.status
        if name in self.values:
            return self.values[name]
        raise EvaluationError(f"KTAP test '{self.result.name}' printed no value '{name}'"
                              + (f" (it printed: {', '.join(self.values)})" if self.values
                                 else " (it printed no key=value diagnostics)"))


class KtapView(View):
    """``ktap.<test>``: every test point printed in any phase (a later phase wins a name)."""

    def __init__(self, docs: list[KtapDocument]) -> None:
        self.tests: dict[str, TestView] = {}
        for doc in docs:
            for _path, result in doc.walk():
                self.tests[result.name] = TestView(result)

    def describe(self) -> str:
        return "ktap"

    @property
    def fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.tests)

    def expr_attr(self, name: str) -> Any:
        if name not in self.tests:
            printed = ", ".join(list(self.tests)[:15])
            raise EvaluationError(f"no KTAP test point '{name}' was printed"
                                  + (f" (printed: {printed})" if printed else
                                     " (no KTAP output at all)"))
        return self.tests[name]

    def expr_item(self, key: Any) -> Any:
        return self.expr_attr(str(key))

    def __contains__(self, name: object) -> bool:
        return name in self.tests


_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)=(\S+)")


def parse_key_values(text: str) -> dict[str, int | str]:
    """``"sum=12 cpu0=6"`` (any layout, any separators) -> {"sum": 12, "cpu0": 6}."""
    return {k: convert_value(v) for k, v in _TOKEN.findall(text)}


class OutputView(View):
    """The output of a ``read`` or ``run`` step: key=value tokens, ``text``, ``exit``."""

    def __init__(self, name: str, text: str, exit_status: int, truncated: bool) -> None:
        self.name = name
        self.text = text
        self.exit = exit_status
        self.truncated = truncated
        self.values = parse_key_values(text)

    def describe(self) -> str:
        return self.name

    @property
    def fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("text", "exit", "truncated", "lines", *self.values)

    def expr_attr(self, name: str) -> Any:
        if name in ("text", "exit", "truncated"):
            return getattr(self, name)
        if name == "lines":
            return tuple(self.text.splitlines())
        if name in self.values:
            return self.values[name]
        raise EvaluationError(f"{self.name} has no value '{name}'"
                              + (f" (found: {', '.join(self.values)})" if self.values
                                 else f" (its text: {self.text[:200]!r})"))


@dataclass(frozen=True)
class VmallocTotals(View):
    count: int
    pages: int
    bytes: int
    fields = ("count", "pages", "bytes")

    def describe(self) -> str:
        return "vmalloc"


class SnapshotView(View):
    """A /proc snapshot (kmodlab.runner.ProcSnapshot) as expressions read it."""

    fields = ("slab", "buddy", "free_pages", "meminfo", "vmalloc", "vmalloc_all", "ioremap",
              "zones", "largest_free_order")

    def __init__(self, name: str, snapshot: Any, module: str) -> None:
        self.name = name
        self.snapshot = snapshot
        self.module = module

    def describe(self) -> str:
        return self.name

    @property
    def slab(self) -> Mapping[str, Any]:
        return _MappingView(self.snapshot.slabinfo, f"{self.name}.slab")

    @property
    def buddy(self) -> Mapping[str, tuple[int, ...]]:
        zones: dict[str, tuple[int, ...]] = {}
        for (node, zone), counts in self.snapshot.buddyinfo.items():
            key = zone if node == 0 else f"{zone}@{node}"
            zones[key] = tuple(counts)
        return zones

    @property
    def free_pages(self) -> int:
        return self.snapshot.buddyinfo.free_pages()

    @property
    def zones(self) -> tuple[str, ...]:
        """Node 0's zones in /proc/buddyinfo's order (model.preferred_zone() takes them)."""
        return tuple(zone for node, zone in self.snapshot.buddyinfo if node == 0)

    @property
    def largest_free_order(self) -> SafeFunction:
        """``largest_free_order(zone)``: the largest order with a free block in node 0's
        ``zone`` (-1: none free)."""
        info = self.snapshot.buddyinfo

        def largest(zone: str) -> int:
            counts = info.get((0, zone))
            if counts is None:
                raise EvaluationError(f"{self.name}: no zone {zone!r}; zones: "
                                      f"{', '.join(self.zones)}")
            return max((o for o, c in enumerate(counts) if c), default=-1)

        return SafeFunction(f"{self.name}.largest_free_order", largest)

    @property
    def meminfo(self) -> Mapping[str, int]:
        return dict(self.snapshot.meminfo.data)

    def _vm_totals(self, entries: list[Any]) -> VmallocTotals:
        return VmallocTotals(len(entries), sum(e.pages for e in entries),
                             sum(e.size for e in entries))

    @property
    def vmalloc(self) -> VmallocTotals:
        return self._vm_totals([e for e in self.snapshot.vmallocinfo
                                if e.module == self.module and "vmalloc" in e.flags])

    @property
    def vmalloc_all(self) -> VmallocTotals:
        return self._vm_totals([e for e in self.snapshot.vmallocinfo if "vmalloc" in e.flags])

    @property
    def ioremap(self) -> VmallocTotals:
        """Every ioremap area (/proc/vmallocinfo's ``ioremap`` flag), whoever the caller: on
        arm64 6.6+ it is ioremap_prot(), not the module."""
        return self._vm_totals([e for e in self.snapshot.vmallocinfo if "ioremap" in e.flags])


class SharedMemoryView(View):
    """``shared``: what the module left in the guest's shared memory (kmodlab.observe.
    shared_memory), read on the host while it was loaded."""

    fields = ("size", "runs")

    def __init__(self, text: str) -> None:
        from kmodlab.observe.shared_memory import parse_runs

        self._shared = parse_runs(text)

    def describe(self) -> str:
        return "shared"

    def expr_attr(self, name: str) -> Any:
        if name == "size":
            return self._shared.size
        if name == "runs":
            return tuple((r.offset, r.word, r.count) for r in self._shared.runs)
        raise EvaluationError(f"shared has no '{name}' (known: size, runs)")


class MissingView(View):
    """Stands for an observation that was never made (the guest crashed, a step was skipped)."""

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def describe(self) -> str:
        return self.name

    def expr_attr(self, name: str) -> Any:
        raise EvaluationError(f"'{self.name}' was not observed: {self.why}")

    def expr_item(self, key: Any) -> Any:
        raise EvaluationError(f"'{self.name}' was not observed: {self.why}")


class NamespaceView(View):
    """A named group of views (``read``, ``run``): unknown names say what exists."""

    def __init__(self, label: str, items: Mapping[str, Any], missing: Mapping[str, str]) -> None:
        self.label = label
        self.items = dict(items)
        self.missing = dict(missing)

    def describe(self) -> str:
        return self.label

    def expr_attr(self, name: str) -> Any:
        if name in self.items:
            return self.items[name]
        if name in self.missing:
            raise EvaluationError(f"{self.label}.{name} was not observed: {self.missing[name]}")
        raise EvaluationError(f"{self.label} has no '{name}' (known: "
                              f"{', '.join(self.items) or 'none'})")

    def expr_item(self, key: Any) -> Any:
        return self.expr_attr(str(key))
