"""What every family's parameter model shares.

A family's parameters are a pydantic model: types and ranges are declared once, and the same
declaration checks CLI strings, lab files and Python callers.  A bad value becomes a ConfigError
that names the family, the parameter and the allowed range, before anything is rendered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from kmodlab.errors import ConfigError
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import gfp as gfp_mod
from kmodlab.modules import limits

KMALLOC_MAX = limits.kmalloc_max_size(None)
"""4 MiB: the schema bound; :meth:`FamilyParams.check_kernel` re-checks against the real kernel."""

MAX_ORDER = limits.DEFAULT_MAX_PAGE_ORDER

SizeInt = Annotated[int, Field(ge=1, le=KMALLOC_MAX)]


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        raise ValueError(f"{value} is not a power of two")
    return value


PowerOfTwo = AfterValidator(_power_of_two)


def gfp_field(allowed: frozenset[str]) -> AfterValidator:
    """Validator for a GFP expression string restricted to ``allowed`` flag names."""

    def check(value: str) -> str:
        return gfp_mod.parse_gfp(value, allowed).name

    return AfterValidator(check)


def unique(values: Iterable[Any], what: str) -> None:
    """Refuse duplicates: each value becomes a KTAP test name, and names must be unique."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} lists {value!r} twice (each one names a KTAP test)")
        seen.add(value)


class FamilyParams(BaseModel):
    """Base of every family's parameters.  Unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    family: ClassVar[str]

    def check_kernel(self, kernel: Kernel) -> None:
        """Checks that need the target kernel (max order, flags that appeared in some version).

        Raise ConfigError via :meth:`refuse`.  The default has nothing to check.
        """

    def refuse(self, param: str, message: str) -> None:
        raise ConfigError(f"{self.family}: parameter '{param}': {message}")

    def template_context(self) -> dict[str, Any]:
        """Values the template sees.  Only validated values: never user text as template source."""
        return self.model_dump()

    def held_bytes(self) -> int:
        """Bytes the module holds between load and unload (checked against MAX_HELD_BYTES)."""
        return 0


def describe_field(model: type[FamilyParams], name: str) -> str:
    field = model.model_fields.get(name)
    return (field.description or "") if field else ""


def validate_params(model: type[FamilyParams], data: Mapping[str, Any]) -> FamilyParams:
    """Build ``model`` from ``data``, turning pydantic's errors into one ConfigError."""
    try:
        params = model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(model, exc)) from None
    held = params.held_bytes()
    if held > limits.MAX_HELD_BYTES:
        raise ConfigError(
            f"{model.family}: these parameters hold {held >> 20} MiB at once; the limit is "
            f"{limits.MAX_HELD_BYTES >> 20} MiB (guests have 1 GiB): lower sizes or counts"
        )
    return params


def format_validation_error(model: type[FamilyParams], exc: ValidationError) -> str:
    lines = [f"{model.family}: invalid parameters:"]
    for err in exc.errors(include_url=False):
        loc = [str(part) for part in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if not loc:  # a model-level check: its message names the parameters itself
            lines.append(f"  {msg}")
            continue
        param = loc[0]
        where = f"'{param}'" + (f" item {loc[1]}" if len(loc) > 1 and loc[1].isdigit() else "")
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            lines.append(f"  unknown parameter '{param}'; known: {known}")
            continue
        value = err.get("input")
        allowed = describe_field(model, param)
        line = f"  parameter {where} = {value!r}: {msg}"
        if allowed:
            line += f"; allowed: {allowed}"
        lines.append(line)
    return "\n".join(lines)
