"""Fault injection: fail a module's allocations one at a time and judge its error paths
(``kmodlab faults``, ``LoadedModule.sweep_failures()``)."""

from kmodlab.faults.sweep import (
    FaultReport,
    FaultRun,
    FaultSite,
    FaultSweep,
    sweep_failures,
)

__all__ = ["FaultReport", "FaultRun", "FaultSite", "FaultSweep", "sweep_failures"]
