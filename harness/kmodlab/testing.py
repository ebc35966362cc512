"""Verdicts on what the kernel did during a test, for the pytest plugin and the grader.

The verdict reads the *whole* console log of the test (:mod:`kmodlab.observe.stream`: line by
line, bounded memory), so a WARN after 20 KB of log, or an oops inside a flood of megabytes,
fails the test like any other.  A window is closed by a marker written to /dev/kmsg that the
console log must show (:mod:`kmodlab.console.sync`), so nothing still on its way through the
console is left to the next window.

Each report is blamed on the module its guilty frame names (:mod:`kmodlab.observe.blame`); a
:class:`GuestLedger` remembers which test loaded which module on a guest and how far the guest's
log has been judged, so a report printed by test A's module (its workqueue, a timer) while
test B runs is named as A's ("delayed report from kml_x, loaded by test_a"), and a report after
the last test is still judged when the session ends.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmodlab.console.sync import sync_console
from kmodlab.errors import KmodlabError
from kmodlab.observe.stream import Found, Scan, scan_file

if TYPE_CHECKING:
    from kmodlab.guest import Guest

REPORT_BYTES = 20000
"""Text of a test's kernel log attached to a failure report (its beginning and its end)."""
SYNC_TIMEOUT = 10.0
"""Seconds the console may take to show a window's closing marker."""
SETTLE_SECONDS = 5.0
"""After the last test, how long a module left loaded may still report before the guest stops."""
WARNING_KINDS = ("warning", "slab_leak")


def module_factory(guest: Guest, registry: list):
    """The callable behind the ``kmodule`` fixture (usable outside pytest too)."""
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


# --------------------------------------------------------------------------- the ledger

@dataclass(frozen=True)
class Owner:
    """The test that loaded a module, and whether it expected kernel warnings."""

    test: str
    expect_warnings: bool = False


@dataclass
class GuestLedger:
    """What the plugin knows of one guest: its log is judged up to byte ``checked``; ``owners``
    says which test loaded each module; ``left_loaded`` the modules a test could not unload."""

    guest: Guest
    checked: int
    owners: dict[str, Owner] = field(default_factory=dict)
    left_loaded: dict[str, str] = field(default_factory=dict)
    builds: dict[str, Any] = field(default_factory=dict)
    """Module name -> its BuiltModule, to point a report's frames at source lines."""

    def with_sources(self, verdict: str | None) -> str | None:
        """``verdict`` with the frames of the test modules' code as ``file.c:42`` lines."""
        if not verdict:
            return verdict
        lines = [line for built in self.builds.values() for line in built.source_lines(verdict)]
        return verdict + "".join(f"\nin your source: {line}" for line in lines)

    @classmethod
    def start(cls, guest: Guest) -> GuestLedger:
        """A ledger from the console log's current end (what came before was judged by no one
        here: the boot, or another session's tests on a restored guest)."""
        try:
            offset = guest.console_log.stat().st_size
        except OSError:
            offset = 0
        return cls(guest, offset)

    def scan(self, sync: bool = True) -> Scan:
        """Everything the guest printed since ``checked``, classified; the window is closed by
        a marker when the guest can still run commands (``sync``), else it runs to the end of
        the file.  ``checked`` moves to the window's end."""
        marker = None
        if sync and self.guest.healthy:
            marker = f"kmodlab-judged-{secrets.token_hex(6)}"
            try:
                if not sync_console(self.guest, marker, self.checked, SYNC_TIMEOUT):
                    marker = None
            except (KmodlabError, OSError):   # it stopped answering: judge what is there
                marker = None
        scan = scan_file(self.guest.console_log, self.checked, end_marker=marker,
                         candidates=tuple(self.owners)) or Scan()
        self.checked = scan.position if scan.position else self.checked
        return scan


# --------------------------------------------------------------------------- verdicts

def _blame(found: Found, owners: dict[str, Owner], test: str | None) -> Owner | None:
    """The owner of the report's module when that is not ``test`` (a delayed report)."""
    owner = owners.get(found.module) if found.module else None
    return owner if owner is not None and owner.test != test else None


def judge(scan: Scan, *, state: str = "ready", test: str | None = None,
          expect_warnings: bool = False, owners: dict[str, Owner] | None = None,
          when: str = "during the test") -> str | None:
    """None when the window ``scan`` shows a healthy kernel; else what went wrong, with the
    report's own lines (``state``: the guest's state, "broken" after a command hung and
    "crashed" after it died; ``test``: who is being judged; ``owners``: who loaded which module).

    Order: a crash, a delayed report from another test's module, a lockup, a hung command (a
    flood when the kernel was still printing at a flood's rate), then a WARN or slab leak
    unless the test expected them."""
    owners = owners or {}
    where = f" {when}" if when else ""
    for found in scan.complaints:
        if found.event.is_crash:
            owner = _blame(found, owners, test)
            head = (f"delayed report from {found.module}, loaded by {owner.test}: "
                    if owner is not None else "")
            return f"{head}crash ({found.event.kind}){where}:\n{scan.excerpt(found)}"
    for found in scan.complaints:
        owner = _blame(found, owners, test)
        if owner is not None and not (owner.expect_warnings
                                      and found.event.kind in WARNING_KINDS):
            return (f"delayed report from {found.module}, loaded by {owner.test}: kernel "
                    f"{found.event.kind} printed{where}:\n{scan.excerpt(found)}")
    if state == "crashed":
        return f"crash: the guest died{where}\n{scan.tail[-3000:]}"
    for found in scan.complaints:
        what = found.event.lockup
        if what is not None:
            return f"lockup ({what}){where}: {found.event.title}\n{scan.excerpt(found)}"
    if state == "broken":
        if scan.flood is not None:
            return (f"flood: a command in the guest did not finish while the kernel printed "
                    f"without end ({scan.flood.describe()})\nlast lines:\n{scan.tail[-1500:]}")
        return f"hang: a command in the guest did not finish\n{scan.tail[-3000:]}"
    if not expect_warnings:
        for found in scan.complaints:
            if found.event.kind in WARNING_KINDS and _blame(found, owners, test) is None:
                return (f"kernel {found.event.kind}{where} (mark the test "
                        f"kmodlab(expect_warnings=True) if expected):\n{scan.excerpt(found)}")
    return None


def _state(guest: Guest) -> str:
    value = getattr(guest.state, "value", str(guest.state))
    return str(value)


def console_verdict(guest: Guest, offset: int, expect_warnings: bool = False) -> str | None:
    """None when the kernel stayed healthy since byte ``offset`` of the console log; else a
    classification and the report (the whole log to its end is read)."""
    ledger = GuestLedger(guest, offset)
    scan = ledger.scan(sync=False)
    return judge(scan, state=_state(guest), expect_warnings=expect_warnings)


def console_slice(guest: Guest, offset: int, limit: int = REPORT_BYTES) -> str:
    """Kernel console text printed since byte ``offset``, bounded: its beginning and its end
    (a flood cannot fill a report)."""
    scan = scan_file(guest.console_log, offset, keep_bytes=limit)
    return scan.text if scan is not None else ""


__all__ = ["GuestLedger", "Owner", "console_slice", "console_verdict", "judge",
           "module_factory"]
