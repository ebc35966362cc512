"""Evaluate a lab's checks on what a run observed.

Each check kind is one small function returning (passed, expected, observed, message); the
expected/observed texts are what a student reads in the report, so they name values, not code.
Observations a run never made (the guest crashed, insmod failed) fail the checks that need
them with the reason, rather than raising.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kmodlab.labs.engine import Observations
from kmodlab.labs.errors import EvaluationError
from kmodlab.labs.expr import Trace
from kmodlab.labs.params import render_template
from kmodlab.labs.results import CheckResult
from kmodlab.labs.schema import Check, LabSpec
from kmodlab.labs.views import (
    KtapView,
    MissingView,
    ModelView,
    NamespaceView,
    SharedMemoryView,
    SnapshotView,
    View,
)
from kmodlab.leaks import DEFAULT_TOLERANCES, LeakReport, Tolerances, find_leaks

Verdict = tuple[bool, str, str, str]   # passed, expected, observed, message
EXCERPT_LINES = 40


class _Events(View):
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    fields = ("panic", "oops", "bug", "might_sleep", "kasan", "kfence", "ubsan", "warning",
              "slab_leak",
              "module_load_error", "module_taint")

    def describe(self) -> str:
        return "events"

    def expr_attr(self, name: str) -> Any:
        if name not in self.fields:
            raise EvaluationError(f"events has no '{name}' (known: {', '.join(self.fields)})")
        return self.counts.get(name, 0)


def build_env(spec: LabSpec, obs: Observations, base_env: dict[str, Any], model: Any,
              predictions: bool = False) -> dict[str, Any]:
    """The names a check expression sees (kmodlab.labs.views lists them)."""
    env = dict(base_env)
    env["ktap"] = KtapView(obs.ktap)
    stopped = obs.stopped_early
    for name in ("before", "loaded", "after", *[s.observe.as_ for s in spec.steps  # type: ignore[union-attr]
                                                  if s.kind == "observe"]):
        if name in obs.snapshots:
            env[name] = SnapshotView(name, obs.snapshots[name], spec.module)
        else:
            why = obs.missing.get(name) or stopped or "this snapshot was not taken"
            env[name] = MissingView(name, why)
    if obs.shared is not None:
        env["shared"] = SharedMemoryView(obs.shared)
    else:
        env["shared"] = MissingView("shared", obs.missing.get("shared") or stopped
                                    or "the guest has no shared memory")
    reads = {k: v for k, v in obs.outputs.items() if v.name.startswith("read.")}
    runs = {k: v for k, v in obs.outputs.items() if v.name.startswith("run.")}
    read_names = [s.read.as_ for s in spec.steps if s.kind == "read"]  # type: ignore[union-attr]
    run_names = [s.run.as_ for s in spec.steps if s.kind == "run" and s.run.as_]  # type: ignore[union-attr]
    missing_why = stopped or "the step did not run"
    env["read"] = NamespaceView("read", reads, {n: obs.missing.get(n, missing_why)
                                                for n in read_names if n not in reads})
    env["run"] = NamespaceView("run", runs, {n: obs.missing.get(n, missing_why)
                                             for n in run_names if n not in runs})
    counts: dict[str, int] = {}
    for e in obs.events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    env["events"] = _Events(counts)
    if model is not None:
        env["model"] = ModelView(model, predictions=predictions)
    return env


def _fmt(value: Any) -> str:
    if hasattr(value, "rule") and hasattr(value, "value"):
        how = "exact" if value.exact else (f"accepted range {value.bound[0]}..{value.bound[1]}"
                                           if value.bound else "approximate")
        return f"{value.value!r} ({how}; {value.rule})"
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def _excerpt(text: str) -> str:
    lines = text.splitlines()
    more = f"\n[... {len(lines) - EXCERPT_LINES} more lines]" if len(lines) > EXCERPT_LINES else ""
    return "\n".join(lines[:EXCERPT_LINES]) + more


# ------------------------------------------------------------------------------ kinds
def _ktap(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    spec = check.ktap
    assert spec is not None
    view: KtapView = env["ktap"]
    want = spec.status
    if spec.test not in view:
        printed = ", ".join(list(view.tests)[:12]) or "none"
        why = f"; {obs.stopped_early}" if obs.stopped_early else ""
        return False, f"test point '{spec.test}' reports {want}", "not printed", \
            f"KTAP test points printed: {printed}{why}"
    status = view.tests[spec.test].result.status
    ok = status == want
    values = view.tests[spec.test].values
    detail = " ".join(f"{k}={v}" for k, v in list(values.items())[:12])
    return ok, f"'{spec.test}' {want}", status + (f" ({detail})" if detail else ""), ""


def _expect(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    trace = Trace()
    expr = check.expect_expr
    try:
        value = expr.evaluate(env, trace)
    except EvaluationError as exc:
        return False, expr.source, trace.render() or "-", f"could not evaluate: {exc}"
    if not isinstance(value, (bool, int)):
        return False, expr.source, _fmt(value), "the expression must be true or false"
    return bool(value), expr.source, trace.render() or _fmt(value), ""


def _model(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    spec = check.model
    assert spec is not None
    penv = dict(env)
    penv["model"] = ModelView(model, predictions=True)
    try:
        prediction = spec.predict_expr.evaluate(penv)
    except EvaluationError as exc:
        return False, spec.predict, "-", f"the model could not predict: {exc}"
    trace = Trace()
    try:
        observed = spec.observed_expr.evaluate(env, trace)
    except EvaluationError as exc:
        return False, _fmt(prediction), "-", f"could not read {spec.observed}: {exc}"
    value = prediction.value if hasattr(prediction, "rule") else prediction
    if hasattr(observed, "rule"):
        observed = observed.value
    if spec.tolerance and isinstance(value, (int, float)) and isinstance(observed, (int, float)):
        ok = abs(observed - value) <= spec.tolerance
        expected = f"{value!r} ± {spec.tolerance:g}" + (
            f" ({prediction.rule})" if hasattr(prediction, "rule") else "")
    elif hasattr(prediction, "accepts"):
        ok = prediction.accepts(observed)
        expected = _fmt(prediction)
    else:
        ok = observed == value
        expected = _fmt(value)
    return ok, f"{spec.predict} = {expected}", f"{spec.observed} = {_fmt(observed)}", ""


def _dmesg(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    spec = check.dmesg if check.dmesg is not None else check.dmesg_absent
    assert spec is not None
    if spec.phase:
        texts = [t for label, t in obs.phase_logs.items()
                 if label == spec.phase or label.rstrip("0123456789") == spec.phase]
        if not texts:
            return False, f"kernel log of phase '{spec.phase}'", "that phase did not run", \
                obs.stopped_early
        text = "\n".join(texts)
    else:
        text = obs.log_text + ("\n" + obs.crash if obs.crash else "")
    m = re.search(spec.pattern, text, re.MULTILINE)
    where = f" (phase {spec.phase})" if spec.phase else ""
    if spec.present:
        return bool(m), f"a kernel log line matching /{spec.pattern}/{where}", \
            (m.group(0)[:300] if m else "no matching line"), ""
    return not m, f"no kernel log line matching /{spec.pattern}/{where}", \
        (m.group(0)[:300] if m else "none"), ""


def _no_crash(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    spec = check.no_crash
    assert spec is not None
    kinds = set(spec.kinds)
    expected = "no " + ", ".join(sorted(kinds)) + " report"
    if obs.crash and (obs.crash_kind in kinds or obs.crash_kind in ("guest died", "lockup")):
        return (False, expected,
                f"{obs.crash_kind}:\n{_excerpt(obs.crash)}{obs.source_note(obs.crash)}", "")
    if obs.hang:
        return False, expected, f"hang: {obs.hang}", ""
    if obs.flood:
        return False, expected, obs.stopped_early, ""
    bad = [e for e in obs.events if e.kind in kinds]
    if bad:
        return (False, expected,
                f"{bad[0].kind}: {_excerpt(bad[0].excerpt)}{obs.source_note(bad[0].excerpt)}",
                f"{len(bad)} report(s)")
    return True, expected, "none", ""


def _snapshot_or_why(env: dict[str, Any], name: str) -> Any:
    view = env.get(name)
    if isinstance(view, MissingView):
        raise EvaluationError(f"'{name}' was not observed: {view.why}")
    return view


def _leak_report(obs: Observations, env: dict[str, Any],
                 tolerances: Tolerances = DEFAULT_TOLERANCES) -> LeakReport:
    """The shared leak detector (kmodlab.leaks) on this run: its own snapshots (taken right
    after shrinking every cache around insmod/rmmod) when the run made them, else the lab's
    ``before``/``after``.  Raises EvaluationError when a snapshot is missing."""
    before_view = _snapshot_or_why(env, "before")
    after_view = _snapshot_or_why(env, "after")
    before = obs.leak_before or before_view.snapshot
    after = obs.leak_after or after_view.snapshot
    module = obs.module or getattr(before_view, "module", "")
    confirm = [obs.leak_confirm] if obs.leak_confirm is not None else []
    return find_leaks(before, after, module=module, loaded=obs.snapshots.get("loaded"),
                      footprint=obs.footprint, tolerances=tolerances, confirm=confirm)


def _no_leaks(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    """rmmod succeeded, SLUB reported no objects remaining, and the leak detector found nothing
    left behind.  The lab's keys keep their meaning: ``caches`` are judged by objects alone
    against ``tolerance``; ``vmalloc: false`` ignores the module's vmalloc areas;
    ``free_pages_tolerance`` bounds the buddy-free pages lost."""
    spec = check.no_leaks
    assert spec is not None
    problems: list[str] = []
    expected = "everything allocated is freed by rmmod"
    leaks = [e for e in obs.events if e.kind == "slab_leak"]
    if leaks:
        problems.append(f"SLUB reported objects remaining: {_excerpt(leaks[0].excerpt)}")
    if obs.unload is None:
        return False, expected, "the module was not unloaded", obs.stopped_early
    if not obs.unload.ok:
        problems.append(f"rmmod failed: {obs.unload.output.strip()[:200]}")
    try:
        tolerance = int(render_template(str(spec.tolerance), env))
    except (EvaluationError, ValueError) as exc:
        return False, expected, "-", f"tolerance {spec.tolerance!r}: {exc}"
    named: dict[str, int] = {}
    for template in spec.caches:
        try:
            named[render_template(template, env)] = tolerance
        except EvaluationError as exc:
            return False, expected, "-", f"cache name {template!r}: {exc}"
    tolerances = replace(DEFAULT_TOLERANCES, caches=named,
                         free_pages=spec.free_pages_tolerance)
    try:
        report = _leak_report(obs, env, tolerances)
    except EvaluationError as exc:
        return False, expected, "-", str(exc)
    for leak in report.leaks:
        if leak.kind == "vmalloc" and not spec.vmalloc:
            continue
        if leak.kind == "slab" and leak.where in named:
            problems.append(f"{leak.where}: {leak.count} more live objects after rmmod than "
                            f"before insmod (tolerance {named[leak.where]})")
        elif leak.kind == "free_pages":
            problems.append(f"{leak.count} fewer free pages after rmmod than before insmod "
                            f"(tolerance {spec.free_pages_tolerance})")
        else:
            problems.append(leak.describe())
    if problems:
        return False, expected, "; ".join(problems), ""
    return True, expected, "nothing left behind", ""


def _cache_destroyed(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    """The cache was listed while the module was loaded and the leak detector does not find it
    left behind after rmmod."""
    assert check.cache_destroyed is not None
    try:
        name = render_template(check.cache_destroyed, env)
        loaded = _snapshot_or_why(env, "loaded")
        after = _snapshot_or_why(env, "after")
        report = _leak_report(obs, env)
    except EvaluationError as exc:
        return False, "cache destroyed at rmmod", "-", str(exc)
    expected = f"cache '{name}' listed while loaded, gone after rmmod"
    if name not in loaded.snapshot.slabinfo:
        return False, expected, f"'{name}' never appeared in /proc/slabinfo", \
            "was it created (and not merged into another cache)?"
    left = [leak for leak in report.of_kind("cache") if leak.where == name]
    if left or name in after.snapshot.slabinfo:
        c = after.snapshot.slabinfo.get(name)
        count = c.active_objs if c is not None else left[0].count
        return False, expected, f"still listed after rmmod ({count} live objects)", \
            left[0].describe() if left else "it was listed before insmod too"
    return True, expected, "destroyed", ""


def _error_paths(check: Check, obs: Observations, env: dict[str, Any], model: Any) -> Verdict:
    """Every allocation site of the path, failed in turn, was handled (see
    kmodlab.labs.error_paths); at least ``min_sites`` of the module's sites were reached."""
    spec = check.error_paths
    assert spec is not None
    expected = (f"every allocation of the {spec.path} path, failed in turn, handled: no crash, "
                "hang, leak or kernel report")
    result = obs.error_paths.get(check.name)
    if result is None:
        return False, expected, "not swept", obs.stopped_early or "the sweep did not run"
    if result.missing:
        return False, expected, "not swept", result.missing
    lines = [row.describe() for row in result.sites]
    bad = result.unhandled
    problems = []
    if bad:
        problems.append(f"{len(bad)} of {len(result.sites)} site(s) not handled")
    if not result.complete:
        problems.append("the path was not swept to its end: "
                        + "; ".join(result.notes or ("allocations remain untested",)))
    if result.module_sites < spec.min_sites:
        problems.append(f"the sweep reached {result.module_sites} allocation site(s) of your "
                        f"module, fewer than {spec.min_sites}: does it allocate on this path?")
    observed = "\n".join(lines) or "no allocation site of the module"
    summary = f"{result.runs} runs, {result.seconds:.0f} s"
    return not problems, expected, observed, "; ".join(problems) or summary


KINDS: dict[str, Callable[[Check, Observations, dict[str, Any], Any], Verdict]] = {
    "ktap": _ktap, "expect": _expect, "model": _model, "dmesg": _dmesg,
    "dmesg_absent": _dmesg, "no_crash": _no_crash, "no_leaks": _no_leaks,
    "cache_destroyed": _cache_destroyed, "error_paths": _error_paths,
}


def evaluate_checks(spec: LabSpec, checks: list[Check], obs: Observations,
                    base_env: dict[str, Any], model: Any) -> list[CheckResult]:
    env = build_env(spec, obs, base_env, model)
    results = []
    for check in checks:
        try:
            ok, expected, observed, message = KINDS[check.kind](check, obs, env, model)
        except EvaluationError as exc:
            ok, expected, observed, message = False, "", "-", f"could not evaluate: {exc}"
        results.append(CheckResult(
            name=check.name, kind=check.kind, max_points=check.points,
            points=check.points if ok else 0.0, status="passed" if ok else "failed",
            hidden=check.hidden, description=check.description, expected=expected,
            observed=observed, message=message))
    return results


def unmet_requirements(spec: LabSpec, obs: Observations, base_env: dict[str, Any],
                       model: Any) -> list[str]:
    """The lab's ``requires`` that did not hold (or could not be evaluated), in words."""
    if not spec.requires:
        return []
    env = build_env(spec, obs, base_env, model)
    unmet = []
    for req in spec.requires:
        trace = Trace()
        try:
            value = req.expr.evaluate(env, trace)
        except EvaluationError as exc:
            unmet.append(f"{req.name}: could not evaluate {req.expect!r}: {exc}")
            continue
        if not value:
            unmet.append(f"{req.name}: {req.expect} was false ({trace.render() or value})")
    return unmet


def not_run(checks: list[Check], why: str) -> list[CheckResult]:
    return [CheckResult(name=c.name, kind=c.kind, max_points=c.points, points=0.0,
                        status="not_run", hidden=c.hidden, description=c.description,
                        message=why) for c in checks]
