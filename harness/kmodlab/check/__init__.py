"""The cross-check: predict every allocator number with the model, measure it in a guest,
compare.

    from kmodlab.check import run_check, render_check
    report = run_check(provision("x86_64", "6.1"))          # all seven families, one guest
    print(render_check(report))                              # exit code: report.exit_code

Each family (kmalloc, kmem_cache, mempool, vmalloc, percpu, devres, pages) has a module here
with ``probes(model)`` (module configurations to run and what to read around them) and
``compare(observation, model)`` (the rows).  A row is exact or bounded; a missing observation
is a failure, and a family that compares nothing is an error.

Names are imported on first use: ``kmodlab`` loads this package for its ``check`` subcommand on
every invocation, and the observation and run modules pull in the runner, the guest and the model.
"""

from __future__ import annotations

from kmodlab.lazy import lazy_exports

_EXPORTS = {
    "Observation": "observation", "Probe": "observation",
    "load_observation": "replay", "save_observation": "replay",
    "CheckReport": "report", "FamilyResult": "report", "render_check": "report",
    "report_to_json": "report",
    "VERDICTS": "rows", "CheckRow": "rows", "Rows": "rows", "judge": "rows",
    "observe": "run", "run_check": "run",
}

__all__ = [
    "VERDICTS", "CheckReport", "CheckRow", "FamilyResult", "Observation", "Probe", "Rows",
    "judge", "load_observation", "observe", "render_check", "report_to_json", "run_check",
    "save_observation",
]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
