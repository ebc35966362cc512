"""Per-student parameters: drawn from a seed so neighbours get different sizes and counts.

The seed of one parameter is ``sha256(lab id, student id, parameter name)``: stable across
Python versions and machines (no ``random`` module), independent per parameter, and
reproducible by the student (``kmodlab lab selftest --student ID`` draws the same values).

Template strings (``"alloc {{ count * 2 }}"``) are filled by evaluating each ``{{ }}`` part with
:mod:`kmodlab.labs.expr` over parameters and derived values only: instructor text, never
student text, and never Jinja's full language.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from kmodlab.labs.errors import EvaluationError, LabError
from kmodlab.labs.expr import Expression
from kmodlab.labs.schema import LabSpec

LOCAL_STUDENT = "local"
_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")


def valid_student_id(student_id: str) -> bool:
    return bool(_STUDENT_ID.match(student_id))


def seed_int(lab_id: str, student_id: str, name: str) -> int:
    digest = hashlib.sha256(f"{lab_id}\0{student_id}\0{name}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


def draw_parameters(spec: LabSpec, lab_id: str, student_id: str) -> dict[str, int | str]:
    """The parameter values of one student (fixed ones are the same for everybody)."""
    values: dict[str, int | str] = {}
    for name, param in spec.parameters.items():
        options = param.candidates()
        values[name] = options[seed_int(lab_id, student_id, name) % len(options)]
    return values


def render_template(text: str, env: Mapping[str, Any]) -> str:
    """Fill ``{{ expression }}`` parts; a value must be a number or a string."""

    def fill(m: re.Match[str]) -> str:
        value = Expression(m.group(1)).evaluate(env)
        if hasattr(value, "value") and not isinstance(value, (int, str, float)):
            value = value.value
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, (int, str)):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        raise EvaluationError(f"{{{{{m.group(1)}}}}} is {value!r}, not a number or a string")

    return _TEMPLATE.sub(fill, text)


def parameter_env(spec: LabSpec, params: Mapping[str, Any], model: Any = None,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Names available before anything runs: parameters, then derived values in order."""
    from kmodlab.labs.views import ModelView

    env: dict[str, Any] = dict(params)
    env["params"] = dict(params)
    if extra:
        env.update(extra)
    if model is not None:
        env["model"] = ModelView(model, predictions=False)
    for name, expr in spec.derived_exprs.items():
        try:
            env[name] = expr.evaluate(env)
        except EvaluationError as exc:
            raise LabError(f"derived value {name!r} = {expr.source!r} cannot be computed for "
                           f"parameters {dict(params)}: {exc}") from None
    return env
