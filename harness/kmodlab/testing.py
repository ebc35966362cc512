"""Verdicts on what the kernel did during a test, for the pytest plugin and the grader."""

from __future__ import annotations

from kmodlab.guest import Guest, GuestState
from kmodlab.observe.dmesg import find_events

SLICE_LIMIT = 20000


def module_factory(guest: Guest, registry: list):
    """The callable behind the ``kmodule`` fixture (usable outside pytest too)."""
    from pathlib import Path

    from kmodlab.modules import FAMILIES, build, build_source_dir, parse_params
    from kmodlab.runner import LoadedModule

    def make(target: str | Path, *args: str, **params: object) -> LoadedModule:
        if isinstance(target, str) and target in FAMILIES:
            items = [f"{k}={_param_text(v)}" for k, v in params.items()]
            built = build(target, parse_params(target, items), guest.kernel)
        else:
            module_args = [*args, *(f"{k}={_param_text(v)}" for k, v in params.items())]
            built = build_source_dir(Path(target), guest.kernel, module_args)
        module = LoadedModule(guest, built)
        registry.append(module)
        return module

    return make


def _param_text(value: object) -> str:
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def console_slice(guest: Guest, offset: int) -> str:
    """Kernel console text printed since byte ``offset`` (bounded: a flood cannot fill a report)."""
    try:
        with open(guest.console_log, "rb") as fh:
            fh.seek(offset)
            data = fh.read(SLICE_LIMIT + 1)
    except OSError:
        return ""
    text = data[:SLICE_LIMIT].decode("utf-8", errors="replace")
    return text + ("\n[... truncated]" if len(data) > SLICE_LIMIT else "")


def console_verdict(guest: Guest, offset: int, expect_warnings: bool = False) -> str | None:
    """None when the kernel stayed healthy since ``offset``; else a classification + excerpt."""
    text = console_slice(guest, offset)
    if guest.state == GuestState.BROKEN:
        return f"hang: a command in the guest did not finish\n{text[-3000:]}"
    events = find_events(text)
    crash = next((e for e in events if e.is_crash), None)
    if crash is not None:
        return f"crash ({crash.kind}) during the test:\n{crash.excerpt}"
    if guest.state == GuestState.CRASHED:
        return f"crash: the guest died during the test\n{text[-3000:]}"
    if not expect_warnings:
        warning = next((e for e in events if e.kind in ("warning", "slab_leak")), None)
        if warning is not None:
            return (f"kernel {warning.kind} during the test (mark the test "
                    f"kmodlab(expect_warnings=True) if expected):\n{warning.excerpt}")
    return None
