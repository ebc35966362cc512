"""A lab on disk: ``labs/<name>/lab.yaml`` plus its solution, provided headers and templates.

    lab = load_lab("labs/kmalloc_waste")      # or just "kmalloc_waste"
    lab.spec.checks, lab.solution_dir, lab.digest

Loading validates lab.yaml against :mod:`kmodlab.labs.schema`; every error names the file, the
line and the field (``labs/x/lab.yaml:42: checks[3].points: Input should be ...``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kmodlab.labs.errors import LabError
from kmodlab.labs.schema import LabSpec
from kmodlab.labs.yamlmarks import Marks, load_with_marks
from kmodlab.locate import data_dir

LAB_FILE = "lab.yaml"
SOLUTION_DIR = "solution"
PROVIDED_DIR = "provided"
TEMPLATES_DIR = "templates"


def labs_dir() -> Path:
    """The sample labs shipped with kmodlab."""
    return data_dir("labs")


def common_headers_dir() -> Path:
    from kmodlab.modules.render import MODULES_DIR

    return Path(MODULES_DIR) / "common"


def _loc_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic's loc without union/validator tags such as 'function-after[...]'."""
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def format_validation_error(exc: ValidationError, source: str, marks: Marks) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s) in the lab file:"]
    for err in exc.errors():
        loc = _clean_loc(tuple(err["loc"]))
        yaml_loc = tuple("as" if p == "as_" else p for p in loc)
        line = marks.line_for(yaml_loc)
        where = f"{source}:{line}" if line else source
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        lines.append(f"  {where}: {_loc_text(yaml_loc)}: {msg}")
    return "\n".join(lines)


def parse_lab_text(text: str, source: str = LAB_FILE) -> LabSpec:
    data, marks = load_with_marks(text, source)
    if not isinstance(data, dict):
        raise LabError(f"{source}:1: a lab file is a mapping (title:, module:, checks: ...)")
    try:
        return LabSpec.model_validate(data)
    except ValidationError as exc:
        raise LabError(format_validation_error(exc, source, marks)) from None


@dataclass
class Lab:
    path: Path
    spec: LabSpec

    @property
    def id(self) -> str:
        return self.spec.id or self.path.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def lab_file(self) -> Path:
        return self.path / LAB_FILE

    @property
    def solution_dir(self) -> Path:
        return self.path / SOLUTION_DIR

    @property
    def has_solution(self) -> bool:
        return self.solution_dir.is_dir()

    def provided_file(self, name: str) -> Path:
        """Where a provided header comes from: the lab's provided/, else modules/common/."""
        for base in (self.path / PROVIDED_DIR, common_headers_dir()):
            candidate = base / name
            if candidate.is_file():
                return candidate
        raise LabError(f"{self.lab_file}: provided file {name!r} is in neither "
                       f"{self.path / PROVIDED_DIR} nor {common_headers_dir()}")

    def template_file(self, name: str) -> Path:
        path = self.path / TEMPLATES_DIR / name
        if not path.is_file() or path.is_symlink():
            raise LabError(f"{self.lab_file}: template {name!r} not found in "
                           f"{self.path / TEMPLATES_DIR}")
        return path

    @cached_property
    def digest(self) -> str:
        """Hash of everything that decides a grade: lab.yaml, provided files, templates."""
        h = hashlib.sha256()
        h.update(self.lab_file.read_bytes())
        for name in self.spec.provided:
            h.update(name.encode() + b"\0" + self.provided_file(name).read_bytes())
        for t in self.spec.templates:
            h.update(t.source.encode() + b"\0" + self.template_file(t.source).read_bytes())
        return h.hexdigest()

    def check_files(self) -> None:
        """Every file the lab refers to exists (solution only when the lab has one)."""
        for name in self.spec.provided:
            self.provided_file(name)
        for t in self.spec.templates:
            self.template_file(t.source)
        if self.has_solution:
            for name in self.spec.submit:
                if not (self.solution_dir / name).is_file():
                    raise LabError(f"{self.lab_file}: submit lists {name!r} but "
                                   f"{self.solution_dir / name} does not exist")


def resolve_lab_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file() and candidate.name == LAB_FILE:
        candidate = candidate.parent
    if (candidate / LAB_FILE).is_file():
        return candidate.resolve()
    named = labs_dir() / str(name_or_path)
    if (named / LAB_FILE).is_file():
        return named.resolve()
    known = sorted(p.parent.name for p in labs_dir().glob(f"*/{LAB_FILE}"))
    raise LabError(f"no lab at {name_or_path!r}: give a folder with a {LAB_FILE} or one of "
                   f"{', '.join(known) or '(no labs in ' + str(labs_dir()) + ')'}")


def load_lab(name_or_path: str | Path) -> Lab:
    path = resolve_lab_path(name_or_path)
    lab_file = path / LAB_FILE
    try:
        text = lab_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(f"cannot read {lab_file}: {exc}") from None
    try:
        spec = parse_lab_text(text, str(lab_file))
    except yaml.YAMLError as exc:  # pragma: no cover - load_with_marks converts these
        raise LabError(f"{lab_file}: {exc}") from None
    lab = Lab(path, spec)
    lab.check_files()
    return lab


def list_labs() -> list[Lab]:
    return [load_lab(p.parent) for p in sorted(labs_dir().glob(f"*/{LAB_FILE}"))]
