"""Load YAML and remember where every value came from, so schema errors name the line.

PyYAML's composer keeps a start mark on every node; :func:`load_with_marks` builds the plain
Python data (safe tags only) together with a map from each value's path, e.g.
``("checks", 3, "points")``, to its 1-based line.  Duplicate mapping keys, which PyYAML would
silently collapse, are errors here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kmodlab.labs.errors import LabError

Path_ = tuple[Any, ...]


class Marks(dict):
    """path tuple -> line number (1-based); :meth:`line_for` finds the nearest known ancestor."""

    def line_for(self, loc: Path_) -> int | None:
        loc = tuple(loc)
        while loc:
            if loc in self:
                return self[loc]
            loc = loc[:-1]
        return self.get((), None)


def load_with_marks(text: str, source: str | Path = "<string>") -> tuple[Any, Marks]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Marks()
        marks = Marks()
        _walk(loader, node, (), marks, str(source))
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise LabError(f"{source}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise LabError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return data, marks


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, marks: Marks, source: str) -> None:
    marks.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise LabError(f"{source}:{key_node.start_mark.line + 1}: mapping keys must be "
                               "plain scalars")
            line = key_node.start_mark.line + 1
            if key in seen:
                raise LabError(f"{source}:{line}: duplicate key {key!r} (first at line "
                               f"{seen[key]})")
            seen[key] = line
            marks[path + (key,)] = line
            _walk(loader, value_node, path + (key,), marks, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(loader, item, path + (i,), marks, source)
