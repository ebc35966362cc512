"""Assertions for kernel-allocator tests whose failures read like a diff, not a repr.

    phase = mod.load()
    assert_ktap_passed(phase)
    assert_matches(model.ksize(160), phase.result("kmalloc_160_kernel").values["ksize"])
    assert_slab_growth(phase, "kmalloc-192", at_least=1)
    assert_clean_unload(mod.unload())

Every message starts with what failed, in the words of the evidence: the phase (``phase load:``,
``phase unload:``), then the KTAP test point, the cache and its field, or the kernel report
(its kind and the line that started it), with expected against observed and, for a model
prediction, the kernel rule it comes from.  Details (diagnostics, a before -> after table,
report excerpts) follow on the next lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kmodlab.leaks import DEFAULT_TOLERANCES, LeakReport, Tolerances
from kmodlab.observe import KernelEvent, KtapResult, SlabCache, diff_slabinfo
from kmodlab.runner import Phase

LOG_TAIL = 3000          # characters of a phase's kernel log quoted when nothing else explains
EXCERPT_LINES = 40       # lines of each kernel report quoted
SLAB_FIELDS = ("active_objs", "num_objs", "num_slabs", "objsize", "objperslab", "pagesperslab")


class KernelAssertionError(AssertionError):
    """An assertion about the kernel failed; the message carries the evidence."""


# --------------------------------------------------------------------------- message parts

def _command(phase: Phase) -> str:
    """`insmod '/tmp/kmodlab/x.ko' n=5` (exit 1) -- what the phase ran and how it ended."""
    command = phase.command
    return f"`{command.command}` (exit {command.exit_status})"


def _event_line(event: KernelEvent) -> str:
    """``warning: WARNING: CPU: 0 PID: 180 at mm/page_alloc.c:4723 ...`` (kind + header line)."""
    folded = dict.fromkeys(k for k in event.kinds if k != event.kind)
    extra = f" (with {', '.join(folded)})" if folded else ""
    cut = "" if event.complete else f" [report cut off: {event.ended_by}]"
    return f"{event.kind}{extra}: {event.title.strip()}{cut}"


def _excerpt(event: KernelEvent) -> str:
    lines = event.excerpt.splitlines()
    if len(lines) > EXCERPT_LINES:
        lines = [*lines[:EXCERPT_LINES], f"[... {len(lines) - EXCERPT_LINES} more lines]"]
    return "\n".join(lines)


def _event_summary(events: Sequence[KernelEvent], heading: str) -> list[str]:
    """A heading and one ``kind: header line`` row per event (nothing when there are none)."""
    if not events:
        return []
    return [heading, *(f"  {_event_line(e)}" for e in events)]


def _log_tail(log: str) -> str:
    text = log.strip("\n")
    if not text:
        return "  (empty)"
    if len(text) > LOG_TAIL:
        text = "[...]\n" + text[-LOG_TAIL:].split("\n", 1)[-1]
    return "\n".join(f"  {line}" for line in text.splitlines())


def _notes(phase: Phase) -> list[str]:
    """What was unusual about reading the phase's log (a ring buffer that overflowed, a log cut
    at its bound): it can explain a missing or truncated KTAP document."""
    notes = getattr(phase, "notes", None) or []
    return [f"note: {note}" for note in notes]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _test_point(path: tuple[str, ...], result: KtapResult) -> list[str]:
    """One failed KTAP test point: status, name path, number, reason, its diagnostics."""
    name = "/".join(path) or result.name or "(unnamed)"
    number = f" (test {result.number})" if result.number is not None else ""
    reason = ""
    if result.directive:
        reason = f" # {result.directive}{' ' + result.reason if result.reason else ''}"
    elif result.reason:
        reason = f" # {result.reason}"
    where = f", log line {result.line_no}" if result.line_no else ""
    lines = [f"  {result.status.upper()} {name}{number}{reason}{where}"]
    if result.ok is None:
        lines.append("      the subtest never printed its result line (did the phase stop early?)")
    lines += [f"      # {d.text}" for d in result.diagnostics]
    return lines


# --------------------------------------------------------------------------- assertions

def assert_ktap_passed(phase: Phase) -> None:
    """Every KTAP test point the module printed in this phase passed (and there was one)."""
    rows: list[str] = []
    failed: list[tuple[tuple[str, ...], KtapResult]] = []
    issues: list[str] = []
    for doc in phase.ktap:
        for path, result in doc.walk():
            rows.append(f"  {result.status:7} {'/'.join(path) or result.name}")
            if not result.passed:
                failed.append((path, result))
        issues += [str(issue) for issue in doc.all_errors()]
    if not phase.ktap:
        lines = [(f"phase {phase.name}: the module printed no KTAP document "
                  f"({_command(phase)})")]
        if not phase.command.ok and phase.command.output.strip():
            lines.append(f"{phase.command.command.split()[0]} said: "
                         f"{phase.command.output.strip()}")
        lines += _event_summary(phase.complaints, "kernel reports in the phase:")
        lines += _notes(phase)
        lines += ["kernel log of the phase:", _log_tail(phase.log)]
        raise KernelAssertionError("\n".join(lines))
    if not failed and not issues:
        return
    parts = []
    if failed:
        names = ", ".join("/".join(path) or result.name for path, result in failed)
        parts.append(f"{_plural(len(failed), 'KTAP test point')} failed: {names}")
    if issues:
        parts.append(f"{_plural(len(issues), 'KTAP format error')}")
    lines = [f"phase {phase.name}: {'; '.join(parts)}"]
    for path, result in failed:
        lines += _test_point(path, result)
    lines += [f"  KTAP error: {issue}" for issue in issues]
    lines += _event_summary(phase.complaints, "kernel reports in the phase:")
    lines += _notes(phase)
    lines += [f"every test point of the phase ({_command(phase)}):", *rows]
    raise KernelAssertionError("\n".join(lines))


def assert_no_kernel_complaints(phase: Phase, allow: frozenset[str] = frozenset()) -> None:
    """No oops, BUG, WARNING, slab leak, KASAN... report in this phase's kernel log."""
    bad = [e for e in phase.complaints if e.kind not in allow]
    if not bad:
        return
    first = _event_line(bad[0])
    more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
    lines = [f"phase {phase.name}: the kernel reported {first}{more}",
             *_event_summary(bad, f"kernel reports during {_command(phase)}:")]
    if allow:
        lines.append(f"(allowed kinds: {', '.join(sorted(allow))})")
    for n, event in enumerate(bad, 1):
        lines += ["", f"report {n} of {len(bad)} ({event.kind}, log line {event.line_no}):",
                  _excerpt(event)]
    raise KernelAssertionError("\n".join(lines))


def _difference(prediction: Any, observed: Any) -> str:
    """``off by +1`` / ``16 above the bound`` for numbers, nothing for anything else."""
    value, bound = getattr(prediction, "value", None), getattr(prediction, "bound", None)
    numbers = (int, float)
    if isinstance(observed, bool) or not isinstance(observed, numbers):
        return ""
    if not getattr(prediction, "exact", True) and bound is not None:
        lo, hi = bound
        if observed < lo:
            return f" ({lo - observed} below the bound)"
        if observed > hi:
            return f" ({observed - hi} above the bound)"
        return ""
    if isinstance(value, numbers) and not isinstance(value, bool):
        return f" (off by {observed - value:+})"
    return ""


def assert_matches(prediction: Any, observed: Any, what: str = "") -> None:
    """The observation agrees with a model Prediction (exactly, or within its bound)."""
    if prediction.accepts(observed):
        return
    value = getattr(prediction, "value", prediction)
    bound = getattr(prediction, "bound", None)
    if getattr(prediction, "exact", True):
        expected = f"{value}"
    elif bound is not None:
        expected = f"{value} within [{bound[0]}, {bound[1]}]"
    else:
        expected = f"{value} (approximately)"
    lines = [(f"{what or 'value'}: model predicted {expected}, kernel showed {observed}"
              f"{_difference(prediction, observed)}")]
    rule = getattr(prediction, "rule", "")
    reason = getattr(prediction, "reason", "")
    lines.append(f"  rule: {rule or '(the prediction names no rule)'}")
    if reason:
        lines.append(f"  why: {reason}")
    raise KernelAssertionError("\n".join(lines))


def _cell(cache: SlabCache | None, attr: str) -> str:
    return str(getattr(cache, attr)) if cache is not None else "-"


def slab_table(phase: Phase, names: Iterable[str],
               fields: Sequence[str] = ("active_objs", "num_objs", "num_slabs")) -> str:
    """before -> after rows of /proc/slabinfo for ``names`` (``-``: not listed)."""
    return _slab_rows(phase.before.slabinfo, phase.after.slabinfo, names, fields)


def _slab_rows(before: Any, after: Any, names: Iterable[str], fields: Sequence[str]) -> str:
    names = list(names)
    rows = [[f"{_cell(before.get(n), f)} -> {_cell(after.get(n), f)}" for f in fields]
            for n in names]
    width = max([24, *(len(n) for n in names)])
    widths = [max([len(f), *(len(r[i]) for r in rows)]) for i, f in enumerate(fields)]
    lines = ["  " + f"{'cache':{width}}" + "".join(f"  {f:>{w}}" for f, w in zip(fields, widths))]
    for name, row in zip(names, rows):
        lines.append("  " + f"{name:{width}}" + "".join(f"  {c:>{w}}" for c, w in zip(row, widths)))
    return "\n".join(lines)


def _busiest_caches(phase: Phase, limit: int = 8) -> list[str]:
    """Caches created in the phase, then those whose active_objs changed most."""
    diff = diff_slabinfo(phase.before.slabinfo, phase.after.slabinfo)
    changed = sorted(diff.changed.values(), key=lambda d: (-abs(d.active_objs), d.name))
    return [*sorted(diff.appeared), *(d.name for d in changed)][:limit]


def assert_slab_growth(phase: Phase, cache: str, *, at_least: int | None = None,
                       exactly: int | None = None) -> None:
    """active_objs of ``cache`` grew by ``exactly`` / ``at_least`` objects during the phase."""
    before = phase.before.slabinfo.get(cache)
    after = phase.after.slabinfo.get(cache)
    if after is None:
        was = ("it was there before the phase" if before is not None
               else "it was not there before the phase either")
        busiest = _busiest_caches(phase)
        lines = [(f"phase {phase.name}: cache {cache!r} is not in /proc/slabinfo after the phase "
                  f"({was}; merged into another cache, or never created?)")]
        if busiest:
            lines += ["caches created or changed most during the phase:",
                      slab_table(phase, busiest, SLAB_FIELDS)]
        else:
            lines.append("no cache was created or changed during the phase")
        raise KernelAssertionError("\n".join(lines))
    growth = after.active_objs - (before.active_objs if before else 0)
    ok = (exactly is None or growth == exactly) and (at_least is None or growth >= at_least)
    if not ok:
        wants = [*([f"exactly {exactly}"] if exactly is not None else []),
                 *([f"at least {at_least}"] if at_least is not None else [])]
        origin = (f"{before.active_objs} -> {after.active_objs}" if before is not None
                  else f"created during the phase, {after.active_objs} now")
        lines = [(f"phase {phase.name}: cache {cache}: active_objs grew by {growth}, expected "
                  f"{' and '.join(wants)} ({origin})")]
        if before is not None and (before.objsize, before.objperslab, before.pagesperslab) != (
                after.objsize, after.objperslab, after.pagesperslab):
            lines.append("  its objsize/objperslab/pagesperslab changed: another cache now "
                         "carries this name")
        lines.append(slab_table(phase, [cache], SLAB_FIELDS))
        raise KernelAssertionError("\n".join(lines))


def assert_clean_unload(phase: Phase, module_caches: tuple[str, ...] = (), *,
                        tolerances: Tolerances | None = None) -> None:
    """rmmod succeeded, the kernel complained about nothing, and nothing of the module remains.

    "Nothing remains" is the leak detector's verdict (:mod:`kmodlab.leaks`), comparing the
    snapshot before insmod with the one after rmmod without being told what to look for: slab
    objects in any cache, caches the module created, vmalloc areas it allocated (also those
    whose caller vmallocinfo now prints as a raw address), pages, per-CPU memory.  The
    :class:`~kmodlab.runner.LoadedModule` that ran the phase judged it (``phase.leaks``);
    ``tolerances`` judges it again with other limits.  Caches named in ``module_caches`` must
    be gone too (a cache of the module that existed before insmod).  A phase without the
    snapshot from before insmod (built by hand, or ``leak_check=False``) is checked for what it
    shows itself: named caches, and vmalloc areas whose caller names the module.
    """
    if not phase.command.ok:
        lines = [(f"phase {phase.name}: {_command(phase)} failed: "
                  f"{phase.command.output.strip() or '(no output)'}")]
        lines += _event_summary(phase.complaints, "kernel reports in the phase:")
        raise KernelAssertionError("\n".join(lines))
    assert_no_kernel_complaints(phase)
    left = [c for c in module_caches if c in phase.after.slabinfo]
    if left:
        counts = ", ".join(f"{c} ({phase.after.slabinfo[c].active_objs} active_objs)"
                           for c in left)
        raise KernelAssertionError(
            f"phase {phase.name}: {_plural(len(left), 'cache')} of the module still in "
            f"/proc/slabinfo after {_command(phase)}: {counts}\n"
            + slab_table(phase, left, SLAB_FIELDS))
    report: LeakReport | None = getattr(phase, "leaks", None)
    if getattr(phase, "baseline", None) is not None and (tolerances is not None
                                                         or report is None):
        report = phase.find_leaks(tolerances or DEFAULT_TOLERANCES)
    if report is not None:
        if not report.clean:
            raise KernelAssertionError(_leak_message(phase, report))
        return
    module = phase.command.command.split()[-1].strip("'")
    areas = list(phase.after.vmallocinfo.by_module(module))
    if areas:
        total = sum(e.size for e in areas)
        lines = [(f"phase {phase.name}: {_plural(len(areas), 'vmalloc area')} of module {module} "
                  f"({total} bytes) still mapped after {_command(phase)}:")]
        lines += [f"  {e.size} bytes, {e.pages} pages, caller {e.caller or e.raw_caller}"
                  for e in areas[:10]]
        if len(areas) > 10:
            lines.append(f"  [... {len(areas) - 10} more]")
        raise KernelAssertionError("\n".join(lines))


def _leak_message(phase: Phase, report: LeakReport) -> str:
    """``phase unload: module m left memory behind after `rmmod 'm'` (exit 0): leaked: ...``
    and the evidence of each leak."""
    t = report.tolerances
    m = report.measurement
    lines = [(f"phase {phase.name}: module {report.module} left memory behind after "
             f"{_command(phase)}: {report.summary()}")]
    slabs = report.of_kind("slab", "cache")
    baseline = getattr(phase, "baseline", None)
    if slabs and baseline is not None:
        lines.append("slab caches, before insmod -> after rmmod (both right after shrinking "
                     f"every cache; tolerance {t.slab_objects} objects and "
                     f"{t.slab_bytes // 1024} KiB per cache):")
        lines.append(_slab_rows(baseline.slabinfo, phase.after.slabinfo,
                                [leak.where for leak in slabs], SLAB_FIELDS))
    if m.module_areas:
        lines.append(f"vmalloc areas of the module still mapped ({len(m.module_areas)}):")
        for area in m.module_areas[:10]:
            e = area.entry
            lines.append(f"  {e.size} bytes, {e.pages} pages, caller "
                         f"{e.caller or e.raw_caller} = {area.caller} ({area.how})")
        if len(m.module_areas) > 10:
            lines.append(f"  [... {len(m.module_areas) - 10} more]")
    for leak in report.of_kind("vmalloc_other"):
        lines.append(f"new vmalloc areas of other callers: {leak.describe()} (tolerance "
                     f"{t.vmalloc_other_pages} pages)")
    for leak in report.of_kind("pages"):
        lines.append(f"pages: MemFree fell by {m.free_kb_lost:,} kB, of which "
                     f"{m.unaccounted_kb:,} kB is in no /proc/meminfo counter (tolerance "
                     f"{t.pages} pages): {leak.describe()}")
    for leak in report.of_kind("percpu", "free_pages"):
        lines.append(f"{leak.kind}: {leak.describe()}")
    lines += [f"note: {note}" for note in report.notes]
    return "\n".join(lines)


def assert_failures_handled(report: Any) -> None:
    """Every allocation site of a fault sweep (:meth:`LoadedModule.sweep_failures`) coped with
    its failure, and every swept path ran to its end.  The message lists each site that did
    not, worst first, with the calls that hit it and what happened."""
    from kmodlab.faults.sweep import OUTCOMES

    bad = sorted(report.unhandled, key=lambda s: OUTCOMES.index(s.outcome)
                 if s.outcome in OUTCOMES else len(OUTCOMES))
    incomplete = [s for s in report.sweeps if not s.complete]
    if not bad and not incomplete:
        return
    lines = [f"fault sweep: {_plural(len(bad), 'allocation site')} not handled"
             + (f", {len(incomplete)} path(s) not swept to the end" if incomplete else "")]
    for site in bad:
        calls = ",".join(map(str, site.runs[:6]))
        lines.append(f"  {site.path} {site.site} (call {calls}): {site.outcome}: "
                     f"{site.detail or site.frame}")
    for sweep in incomplete:
        lines += [f"  {sweep.path}: {note}" for note in sweep.notes]
    raise KernelAssertionError("\n".join(lines))
