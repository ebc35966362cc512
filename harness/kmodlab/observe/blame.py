"""Which module a kernel report is about: the guilty frame, not the task that happened to run.

A report printed from a workqueue, a timer or an RCU callback carries no hint of the command
that was running when it appeared (``Comm: kworker/0:1``), so the test or phase in whose log it
lands is often not the one that caused it.  The kernel does name the code: every frame inside a
module is printed with the module's name in brackets (kernel/kallsyms.c:sprint_backtrace() via
``%pS``), so the first such frame is the guilty module:

* the header of a WARN (``WARNING: CPU: 0 PID: 7 at f.c:9 kml_x_work+0x15/0x30 [kml_x]``),
* ``RIP: 0010:kml_x_work+0x15/0x30 [kml_x]`` (x86) or ``pc : kml_x_work+0x1c/0x40 [kml_x]``
  (arm64), then the call trace's frames (`` kml_x_init+0x1e/0x1000 [kml_x]``),
* ``Workqueue: events kml_x_work [kml_x]`` (kernel/workqueue.c:print_worker_info()).

Without such a frame, ``Modules linked in:`` decides only when it lists exactly one of the
``candidates`` a caller knows were loaded (the modules of the tests so far): a report from the
kernel's own code while a second module sits loaded is not blamed on either.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from kmodlab.observe.dmesg import KernelEvent

_FRAME = re.compile(r"(?:^|[\s:])[\w.$]+\+0x[0-9a-f]+/0x[0-9a-f]+ \[(?P<module>\w+)\]")
_WORKQUEUE = re.compile(r"^Workqueue: \S+ \S+ \[(?P<module>\w+)\]")
_LINKED = re.compile(r"^Modules linked in:(?P<list>.*)$")


def guilty_module(event: KernelEvent, candidates: Collection[str] = ()) -> str | None:
    """The module ``event`` is about (see the module docstring), or None when it names none."""
    if event.module is not None:          # a module_* message names its module itself
        return event.module
    linked: str | None = None
    for line in event.lines:
        text = line.text
        m = _FRAME.search(text) or _WORKQUEUE.match(text.strip())
        if m:
            return m.group("module")
        if linked is None and (m := _LINKED.match(text.strip())):
            linked = m.group("list")
    if linked is not None and candidates:
        names = {word.split("(", 1)[0] for word in linked.split()}
        found = [c for c in candidates if c in names]
        if len(found) == 1:
            return found[0]
    return None


__all__ = ["guilty_module"]
