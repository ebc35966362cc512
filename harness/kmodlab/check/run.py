"""Run the cross-check: every family's probes in one warm guest, each compared to the model.

    report = run_check(provision("x86_64", "6.1"))
    print(render_check(report))

For each probe: build the module (cached), run the ``before`` commands, shrink the compared
slab caches, load (the runner snapshots /proc around insmod), run the ``between`` commands,
shrink again and snapshot (``held``), unload, shrink and snapshot (``released``).  Then the
family's comparator turns the observation and the model into rows.  Loading and unloading go
through the runner's :class:`~kmodlab.phases.PhaseEngine`, shrinking through
:func:`kmodlab.phases.shrink_slabs`, as in the lab grader.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from kmodlab.check.families import CHECKS, FamilyCheck
from kmodlab.check.observation import Observation, Probe
from kmodlab.check.report import CheckReport, FamilyResult
from kmodlab.errors import ConfigError, KmodlabError
from kmodlab.guest import Guest, GuestOptions
from kmodlab.guest_tools import install_tools
from kmodlab.kernels.kernel import Kernel
from kmodlab.model import Model
from kmodlab.modules import build, parse_params
from kmodlab.phases import shrink_slabs, take_snapshot
from kmodlab.runner import LoadedModule, ModuleRun

log = logging.getLogger(__name__)


def _commands(guest: Guest, commands: dict[str, str] | object) -> dict[str, str]:
    return {key: guest.run(cmd, isolate=False).stdout
            for key, cmd in dict(commands).items()}  # type: ignore[call-overload]


def observe(guest: Guest, kernel: Kernel, probe: Probe) -> Observation:
    """Build and run one probe's module, reading everything its comparator needs."""
    params = parse_params(probe.family, list(probe.params))
    built = build(probe.family, params, kernel)
    install_tools(guest, kernel, probe.tools)
    before = _commands(guest, probe.before)
    shrink_slabs(guest, probe.shrink)
    module = LoadedModule(guest, built)
    load = module.load()
    if not module.loaded:
        return Observation(probe, params, ModuleRun(built, load, None), before=before)
    between = _commands(guest, probe.between)
    shared = guest.shared_memory_runs() if probe.shared_memory else None
    held = take_snapshot(guest, shrink=probe.shrink)
    unload = module.unload()
    released = take_snapshot(guest, shrink=probe.shrink)
    after = _commands(guest, probe.after) if unload.command.ok else {}
    return Observation(probe, params, ModuleRun(built, load, unload), held, released, before,
                       between, after, shared)



def check_family(guest: Guest, kernel: Kernel, model: Model, check: FamilyCheck,
                 on_probe: Callable[[Probe], None] | None = None,
                 on_observation: Callable[[Observation], None] | None = None) -> FamilyResult:
    """All probes of one family; an error in one probe stops the family, not the run."""
    result = FamilyResult(check.FAMILY)
    t0 = time.monotonic()
    try:
        for probe in check.probes(model):
            if on_probe is not None:
                on_probe(probe)
            obs = observe(guest, kernel, probe)
            if on_observation is not None:
                on_observation(obs)
            result.probes.append(probe.name)
            result.rows.extend(check.compare(obs, model))
    except KmodlabError as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    if not result.rows and not result.errors:
        result.errors.append(f"family {check.FAMILY} produced no rows: nothing was compared")
    result.seconds = time.monotonic() - t0
    return result


def resolve_families(families: Sequence[str] | None) -> list[str]:
    if not families:
        return list(CHECKS)
    unknown = [f for f in families if f not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown family {', '.join(unknown)}; known: {', '.join(CHECKS)}")
    return list(dict.fromkeys(families))


def run_check(kernel: Kernel, families: Sequence[str] | None = None, *,
              guest: Guest | None = None, cpus: int = 1, transport: str = "serial",
              on_probe: Callable[[Probe], None] | None = None,
              on_observation: Callable[[Observation], None] | None = None) -> CheckReport:
    """Check ``families`` (all by default) on ``kernel`` in one warm guest.

    With ``guest`` given it is used as is (and left running); otherwise a guest with ``cpus``
    CPUs is started and stopped here.  The model gets the guest's CPU count.  ``on_probe`` is
    called before each probe runs, ``on_observation`` with what it saw (e.g. to record it with
    :func:`kmodlab.check.replay.save_observation`).
    """
    names = resolve_families(families)
    t0 = time.monotonic()
    own = guest is None
    cpus = cpus if guest is None else guest.options.cpus
    model = Model.for_kernel(kernel, ncpus=cpus)   # a refusal comes before any guest starts
    if guest is None:
        guest = Guest(kernel, GuestOptions(cpus=cpus, transport=transport)).start()
    report = CheckReport(kernel.arch, f"{kernel.version[0]}.{kernel.version[1]}",
                         kernel.release, kernel.package_version, cpus, repr(model),
                         guest_start=guest.timings.start_to_ready if own else 0.0,
                         booted_from=guest.timings.booted_from if own else "warm")
    try:
        for name in names:
            if own and not guest.healthy:
                # A crash in one family must not fail the next: start over (from the snapshot).
                log.warning("guest left %s; starting a new one", guest.state.value)
                guest.stop()
                guest = Guest(kernel, GuestOptions(cpus=cpus, transport=transport)).start()
            report.families.append(check_family(guest, kernel, model, CHECKS[name], on_probe,
                                                on_observation))
    finally:
        if own:
            guest.stop()
    report.seconds = time.monotonic() - t0
    return report
