"""The cross-check: predict every allocator number with the model, measure it in a guest,
compare.

    from kmodlab.check import run_check, render_check
    report = run_check(provision("x86_64", "6.1"))          # all seven families, one guest
    print(render_check(report))                              # exit code: report.exit_code

Each family (kmalloc, kmem_cache, mempool, vmalloc, percpu, devres, pages) has a module here
with ``probes(model)`` (module configurations to run and what to read around them) and
``compare(observation, model)`` (the rows).  A row is exact or bounded; a missing observation
is a failure, and a family that compares nothing is an error.
"""

from kmodlab.check.observation import Observation, Probe
from kmodlab.check.replay import load_observation, save_observation
from kmodlab.check.report import CheckReport, FamilyResult, render_check, report_to_json
from kmodlab.check.rows import VERDICTS, CheckRow, Rows, judge
from kmodlab.check.run import observe, run_check

__all__ = [
    "VERDICTS", "CheckReport", "CheckRow", "FamilyResult", "Observation", "Probe", "Rows",
    "judge", "load_observation", "observe", "render_check", "report_to_json", "run_check",
    "save_observation",
]
