"""``-p key=value`` strings to a family's typed parameters.

Lists are comma-separated (``sizes=8,96,160``); integers take 0x-hex and K/M/G binary suffixes
(``4K``, ``8MiB``); booleans take 1/0, true/false, yes/no, on/off; ``none`` clears an optional
value.  Conversion is driven by the model's field types, so every family parses the same way and
the model's validators still have the last word.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic.fields import FieldInfo

from kmodlab.errors import ConfigError
from kmodlab.modules.families import get_family
from kmodlab.modules.params.base import FamilyParams, validate_params

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_INT_RE = re.compile(r"^(0x[0-9a-f]+|\d+)\s*([KMG]?)(?:I?B)?$", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def parse_int(text: str) -> int:
    """'4096', '0x1000', '4K', '4KiB', '8M' -> int.  Signs are left to the range check."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    m = _INT_RE.match(s.lstrip("+-"))
    if not m:
        raise ValueError(f"{text!r} is not an integer (examples: 4096, 0x1000, 4K, 8MiB)")
    base = 16 if m[1].lower().startswith("0x") else 10
    return sign * int(m[1], base) * _SUFFIX[m[2].upper()]


def parse_bool(text: str) -> bool:
    s = text.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, 1/0, yes/no)")


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _convert_scalar(tp: Any, text: str) -> Any:
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if type(None) in typing.get_args(tp) and text.strip().lower() in ("none", ""):
            return None
        return _convert_scalar(args[0], text) if len(args) == 1 else text
    if tp is bool:
        return parse_bool(text)
    if tp is int:
        return parse_int(text)
    return text.strip()  # str, Literal[...]: the model validates


def convert(field: FieldInfo, text: str) -> Any:
    """Convert one CLI value according to the field's declared type."""
    tp = _strip_annotated(field.annotation)
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if not text.strip():
            return []
        return [_convert_scalar(item, part) for part in text.split(",")]
    return _convert_scalar(tp, text)


def parse_params(family: str, items: Iterable[str]) -> FamilyParams:
    """``parse_params("kmalloc", ["sizes=8,96,160", "gfp=GFP_KERNEL"])`` -> KmallocParams.

    Unspecified parameters keep their defaults.  Raises ConfigError naming the family, the
    parameter and the allowed values.
    """
    fam = get_family(family)
    model = fam.params
    data: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{fam.name}: parameter {item!r} is not of the form key=value")
        field = model.model_fields.get(key)
        if field is None:
            raise ConfigError(
                f"{fam.name}: unknown parameter '{key}'; known: {', '.join(model.model_fields)}"
            )
        if key in data:
            raise ConfigError(f"{fam.name}: parameter '{key}' given twice")
        try:
            data[key] = convert(field, value)
        except ValueError as exc:
            allowed = field.description or ""
            raise ConfigError(
                f"{fam.name}: parameter '{key}': {exc}" + (f"; allowed: {allowed}" if allowed else "")
            ) from None
    return validate_params(model, data)
