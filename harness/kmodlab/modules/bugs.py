"""The bugs family's data: where a module's bug is, and what each detector is expected to say.

    from kmodlab.modules import render
    from kmodlab.modules.bugs import bug_line, catalog
    rendered = render("bugs", {"bug": "double-free"})
    bug_line(rendered.source)               # the line of kml_bugs.c a report should name
    catalog()["double-free"].expected       # detectors expected to report it (not measured)

The catalog is ``modules/bugs/bugs.yaml``: expectations read from kernel sources, which the
detection matrix measures; its header says what each field means.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import yaml

from kmodlab.errors import ConfigError
from kmodlab.locate import data_dir
from kmodlab.modules.params.bugs import BUG_CLASSES

MARKER = "/* kmodlab: the bug */"
"""The comment on the one faulty statement of a rendered bugs module (same line)."""

CATALOG = "bugs/bugs.yaml"
"""The catalog, relative to ``modules/``."""


def bug_line(source: str) -> int:
    """The 1-based line of ``source`` (a rendered kml_bugs.c) that holds the faulty statement."""
    lines = [n for n, text in enumerate(source.splitlines(), start=1) if MARKER in text]
    if len(lines) != 1:
        raise ConfigError(f"a bugs module marks exactly one statement with {MARKER}; "
                          f"this source marks {len(lines)}")
    return lines[0]


@dataclass(frozen=True)
class Expectation:
    """One detector expected to report a class: its report's first line, as the kernel prints
    it ("…" for varying text), a regex for that line, and the kernel source behind it."""

    detector: str
    first_line: str
    match: str | None
    kind: str | None        # kmodlab.observe.dmesg's event kind; None: not a classified event
    source: str
    when: str = ""

    def matches(self, line: str) -> bool:
        return self.match is not None and re.search(self.match, line) is not None


@dataclass(frozen=True)
class BugSpec:
    name: str
    summary: str
    allocator: str
    stock: str                           # what a stock kernel is expected to do
    expected: tuple[Expectation, ...]
    silent: dict[str, str]               # detector -> why it is not expected to report


@functools.cache
def catalog() -> dict[str, BugSpec]:
    """Every class of ``modules/bugs/bugs.yaml``, in its order (that of BUG_CLASSES)."""
    path = data_dir("modules") / CATALOG
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the bugs catalog {path}: {exc}") from None
    classes: dict[str, Any] = data.get("classes") or {}
    if tuple(classes) != BUG_CLASSES:
        raise ConfigError(f"{path} lists {', '.join(classes)}; BugsParams has "
                          f"{', '.join(BUG_CLASSES)} (same classes, same order)")
    detectors = set(data.get("detectors") or ())
    specs = {}
    for name, entry in classes.items():
        try:
            expected = tuple(Expectation(**item) for item in entry.get("expected") or ())
        except TypeError as exc:
            raise ConfigError(f"{path}: class {name}: {exc}") from None
        silent = {str(k): str(v) for k, v in (entry.get("silent") or {}).items()}
        unknown = sorted(({e.detector for e in expected} | set(silent)) - detectors)
        if unknown:
            raise ConfigError(f"{path}: class {name} names unknown detector(s) "
                              f"{', '.join(unknown)}; known: {', '.join(sorted(detectors))}")
        specs[name] = BugSpec(name, entry["summary"], entry["allocator"], entry["stock"],
                              expected, silent)
    return specs
