"""Fault injection: fail a module's allocations one at a time and judge its error paths
(``kmodlab faults``, ``LoadedModule.sweep_failures()``).  Names load on first use
(kmodlab.lazy): the CLI imports this package for its command on every start."""

from __future__ import annotations

from kmodlab.lazy import lazy_exports

_EXPORTS = {"FaultReport": "sweep", "FaultRun": "sweep", "FaultSite": "sweep",
            "FaultSweep": "sweep", "sweep_failures": "sweep"}

__all__ = ["FaultReport", "FaultRun", "FaultSite", "FaultSweep", "sweep_failures"]

__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
