"""The lab.yaml schema (pydantic v2).  docs/labs.md is its reference; keep the two together.

Every model forbids unknown fields, so a misspelt key is an error naming its line rather than a
silently ignored setting.  Expressions and regular expressions are compiled here, when the lab
is loaded, so a broken check is reported before any student is graded.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from kmodlab import registry
from kmodlab.errors import ConfigError
from kmodlab.labs.errors import ExpressionError
from kmodlab.labs.expr import Expression, compile_expression
from kmodlab.registry import Target

SOURCE_EXTENSIONS = (".c", ".h")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_CMDLINE_WORD = re.compile(r"^[A-Za-z0-9_.,:=/-]+$")
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=False)


def _expr(value: Any) -> Expression:
    try:
        return compile_expression(value)
    except ExpressionError as exc:
        raise ValueError(str(exc)) from None


def template_expressions(text: str) -> list[Expression]:
    """The ``{{ expr }}`` parts of a template string, compiled."""
    return [_expr(m.group(1)) for m in _TEMPLATE.finditer(text)]


def _check_template(text: str) -> str:
    template_expressions(text)
    if "{{" in _TEMPLATE.sub("", text) or "}}" in _TEMPLATE.sub("", text):
        raise ValueError(f"unbalanced '{{{{' / '}}}}' in {text!r}")
    return text


TemplateStr = Annotated[str, Field(description="text with {{ expression }} parts")]


# ------------------------------------------------------------------------------ parameters
class Parameter(_Model):
    """One value of a student's parameters: fixed (``value``) or drawn per student."""

    value: int | str | None = None
    choices: list[int | str] | None = None
    range: tuple[int, int] | None = None
    step: int = Field(1, ge=1)
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _scalar(cls, data: Any) -> Any:
        if isinstance(data, (int, str)) and not isinstance(data, bool):
            return {"value": data}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Parameter:
        given = [k for k in ("value", "choices", "range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of value, choices, range "
                             f"(got {', '.join(given) or 'none'})")
        if self.choices is not None and not self.choices:
            raise ValueError("choices must not be empty")
        if self.range is not None:
            lo, hi = self.range
            if lo > hi:
                raise ValueError(f"range [{lo}, {hi}] is empty")
        return self

    @property
    def drawn(self) -> bool:
        return self.value is None

    def candidates(self) -> Sequence[int | str]:
        """The values a student may draw.  A range stays a ``range``: indexing it costs nothing,
        while a list of a 32-bit range would take the grader's whole memory."""
        if self.value is not None:
            return [self.value]
        if self.choices is not None:
            return list(self.choices)
        assert self.range is not None
        lo, hi = self.range
        return range(lo, hi + 1, self.step)


# ------------------------------------------------------------------------------ guest, timing
class GuestSpec(_Model):
    cpus: int = Field(1, ge=1, le=4)
    memory_mb: int = Field(512, ge=256, le=2048)
    cmdline: list[str] = Field(default_factory=list,
                               description="extra kernel command-line words, e.g. slab_nomerge")

    @field_validator("cmdline")
    @classmethod
    def _words(cls, words: list[str]) -> list[str]:
        for w in words:
            if not _CMDLINE_WORD.match(w):
                raise ValueError(f"kernel command-line word {w!r} has characters outside "
                                 "[A-Za-z0-9_.,:=/-]")
        return words


class Timeouts(_Model):
    build: float = Field(180, gt=0, le=1800)
    load: float = Field(20, gt=0, le=600)
    unload: float = Field(20, gt=0, le=600)
    step: float = Field(10, gt=0, le=600)
    blocked: int | None = Field(
        None, ge=1, le=600,
        description="a task blocked in the kernel (D state) this many seconds is a hang: the "
                    "guest's hung-task detector reports it (with its stack) and the step ends "
                    "then, not at its timeout (the soft-lockup detector is armed at twice this: "
                    "it reports a CPU that does not schedule, see docs/labs.md).  Unset: only the timeouts "
                    "end a step.")


class Limits(_Model):
    """Bounds on what a submission can make the grader read or store."""

    console_bytes: int = Field(16 << 20, ge=1 << 20, description="stop the guest beyond this")
    output_bytes: int = Field(64 << 10, ge=1024, description="per read/run step")
    dmesg_bytes: int = Field(256 << 10, ge=4096, description="per phase")
    build_memory_mb: int = Field(2048, ge=256)
    file_bytes: int = Field(256 << 10, ge=1024, description="per submitted file")


def _target(value: Any) -> Target:
    """lab.yaml's ``x86_64:6.1`` or ``{arch: x86_64, kernel: "6.1"}``, checked by the registry."""
    if isinstance(value, Target):
        return value
    try:
        if isinstance(value, str):
            return registry.parse_target(value)
        if isinstance(value, dict) and set(value) <= {"arch", "kernel", "flavour"}:
            return registry.target(value.get("arch"), str(value.get("kernel") or ""),
                                   value.get("flavour"))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(f"a target is ARCH:KERNEL, e.g. x86_64:6.1, not {value!r}")


def _arch(value: str) -> str:
    try:
        return registry.arch_profile(value).name
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def _series(value: str) -> str:
    value = str(value)
    if value not in registry.series_names():
        raise ValueError(f"unknown kernel series {value!r}; known: "
                         f"{', '.join(registry.series_names())}")
    return value


LabTarget = Annotated[Target, BeforeValidator(_target)]
ArchName = Annotated[str, AfterValidator(_arch)]
SeriesName = Annotated[str, BeforeValidator(str), AfterValidator(_series)]


# ------------------------------------------------------------------------------ steps
class LoadStep(_Model):
    args: dict[str, TemplateStr] = Field(default_factory=dict,
                                         description="insmod parameters, values are templates")
    timeout: float | None = None
    expect_ok: bool = True

    @field_validator("args")
    @classmethod
    def _args(cls, args: dict[str, str]) -> dict[str, str]:
        for key, value in args.items():
            if not _IDENT.match(key):
                raise ValueError(f"module parameter name {key!r} is not a C identifier")
            _check_template(str(value))
        return {k: str(v) for k, v in args.items()}


class UnloadStep(_Model):
    timeout: float | None = None


class WriteStep(_Model):
    path: TemplateStr
    data: TemplateStr
    timeout: float | None = None
    expect_ok: bool = True

    @field_validator("path", "data", mode="before")
    @classmethod
    def _tmpl(cls, value: Any) -> str:
        return _check_template(str(value))


class ReadStep(_Model):
    path: TemplateStr
    as_: str = Field(alias="as")
    timeout: float | None = None
    max_bytes: int | None = Field(None, ge=1)

    @field_validator("path", mode="before")
    @classmethod
    def _tmpl(cls, value: Any) -> str:
        return _check_template(str(value))


class RunStep(_Model):
    """A shell command of the instructor's, run in the guest (never student text)."""

    command: TemplateStr
    as_: str | None = Field(None, alias="as")
    timeout: float | None = None
    max_bytes: int | None = Field(None, ge=1)

    @field_validator("command", mode="before")
    @classmethod
    def _tmpl(cls, value: Any) -> str:
        return _check_template(str(value))


class ObserveStep(_Model):
    as_: str = Field(alias="as")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"as": data} if isinstance(data, str) else data


STEP_KINDS = ("build", "load", "write", "read", "run", "observe", "unload")


class Step(_Model):
    """One entry of ``steps``: a mapping with exactly one key naming the kind."""

    build: dict[str, Any] | None = None
    load: LoadStep | None = None
    write: WriteStep | None = None
    read: ReadStep | None = None
    run: RunStep | None = None
    observe: ObserveStep | None = None
    unload: UnloadStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in ("build", "load", "unload"):
                raise ValueError(f"a bare step must be build, load or unload, not {data!r}")
            return {data: {}}
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("build", "load", "unload") else v)
                    for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one of {', '.join(STEP_KINDS)} "
                             f"(got {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.kind)


# ------------------------------------------------------------------------------ checks
class KtapCheck(_Model):
    test: str
    status: Literal["pass", "fail", "skip"] = "pass"

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"test": data} if isinstance(data, str) else data


class DmesgCheck(_Model):
    pattern: str
    present: bool = True
    phase: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {"pattern": data} if isinstance(data, str) else data

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regular expression {value!r}: {exc}") from None
        return value


CRASH_EVENT_KINDS = ("panic", "oops", "bug", "might_sleep", "kasan", "kfence", "ubsan", "warning",
                     "lockup")
"""Kernel report kinds (kmodlab.observe.dmesg) a ``no_crash`` check fails on by default; a
lockup counts although the kernel goes on (a watchdog saw the module stall a CPU or RCU)."""


class NoCrashCheck(_Model):
    kinds: list[str] = Field(default_factory=lambda: list(CRASH_EVENT_KINDS))

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {} if data is True or data is None else data


class NoLeaksCheck(_Model):
    caches: list[TemplateStr] = Field(default_factory=list,
                                      description="slab caches whose live objects must return "
                                                  "to their 'before' count")
    tolerance: int | TemplateStr = Field(
        4, description="objects per cache: a number or a template such as '{{ count // 2 }}'")
    vmalloc: bool = True
    free_pages_tolerance: int | None = Field(
        None, ge=0, description="if set: buddy-free pages may end at most this far below "
                                "'before'")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return {} if data is True or data is None else data

    @field_validator("caches")
    @classmethod
    def _tmpl(cls, caches: list[str]) -> list[str]:
        for c in caches:
            _check_template(c)
        return caches

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("tolerance must be >= 0")
            return value
        return _check_template(value)


class ModelCheck(_Model):
    predict: str
    observed: str
    tolerance: float = Field(0, ge=0)
    _predict: Expression = PrivateAttr()
    _observed: Expression = PrivateAttr()

    @field_validator("predict", "observed", mode="before")
    @classmethod
    def _syntax(cls, value: Any) -> str:
        return _expr(value).source

    @model_validator(mode="after")
    def _compile(self) -> ModelCheck:
        self._predict = _expr(self.predict)
        self._observed = _expr(self.observed)
        return self

    @property
    def predict_expr(self) -> Expression:
        return self._predict

    @property
    def observed_expr(self) -> Expression:
        return self._observed


class ErrorPathsCheck(_Model):
    """Every allocation of one path of the module failed in turn (``kmodlab faults``): each
    must be handled -- no crash, hang, leak or kernel report.  Needs a lab kernel with fault
    injection (``config: [fault-injection]``)."""

    path: Literal["init", "exit"] = "init"
    max_nth: int = Field(400, ge=1, le=5000,
                         description="allocations of the path tried at most (beyond the "
                                     "loader's); a path that makes more fails the check")
    min_sites: int = Field(1, ge=0, description="module allocation sites the sweep must reach "
                                                "(a module that allocates nothing tests nothing)")
    kmemleak: bool = Field(True, description="scan with kmemleak after every failure (two "
                                             "scans of all memory, seconds each) on kernels "
                                             "that have it: one-object leaks")
    timeout: float = Field(30, gt=0, le=600, description="seconds for each insmod/rmmod")


CHECK_KINDS = ("ktap", "expect", "model", "dmesg", "dmesg_absent", "no_crash", "no_leaks",
               "cache_destroyed", "error_paths")


class Check(_Model):
    name: str = Field(min_length=1, max_length=120)
    points: float = Field(1, ge=0)
    hidden: bool = False
    description: str = ""
    ktap: KtapCheck | None = None
    expect: str | None = None
    model: ModelCheck | None = None
    dmesg: DmesgCheck | None = None
    dmesg_absent: DmesgCheck | None = None
    no_crash: NoCrashCheck | None = None
    no_leaks: NoLeaksCheck | None = None
    cache_destroyed: TemplateStr | None = None
    error_paths: ErrorPathsCheck | None = None
    _expect: Expression | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _flags(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("no_crash", "no_leaks"):
                if data.get(key) is False:
                    raise ValueError(f"{key}: false is not a check; remove the check instead")
            if isinstance(data.get("expect"), (int, float, bool)):
                data["expect"] = str(data["expect"])
        return data

    @field_validator("expect")
    @classmethod
    def _syntax(cls, value: str | None) -> str | None:
        return None if value is None else _expr(value).source

    @field_validator("cache_destroyed")
    @classmethod
    def _cache_tmpl(cls, value: str | None) -> str | None:
        return None if value is None else _check_template(value)

    @model_validator(mode="after")
    def _one(self) -> Check:
        given = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a check has exactly one of {', '.join(CHECK_KINDS)} "
                             f"(got {', '.join(given) or 'none'})")
        if self.expect is not None:
            self._expect = _expr(self.expect)
        if self.dmesg_absent is not None:
            self.dmesg_absent.present = False
        if self.cache_destroyed is not None:
            _check_template(self.cache_destroyed)
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    @property
    def expect_expr(self) -> Expression:
        assert self._expect is not None
        return self._expect


# ------------------------------------------------------------------------------ the lab
class TemplateFile(_Model):
    """``templates/<source>`` rendered with the student's parameters into the build as ``dest``."""

    source: str
    dest: str

    @field_validator("dest")
    @classmethod
    def _dest(cls, value: str) -> str:
        if not _FILE.match(value) or not value.endswith(SOURCE_EXTENSIONS):
            raise ValueError(f"template destination {value!r} must be a plain .c/.h file name")
        return value


class Requirement(_Model):
    """What the harness must have established for the checks to mean anything (e.g. "free
    memory was fragmented before the load"): when it does not hold, the run is a harness
    error, never charged to the student, and never a pass."""

    name: str = Field(min_length=1, max_length=120)
    expect: str
    _expr: Expression | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _compile(self) -> Requirement:
        self._expr = _expr(self.expect)
        return self

    @property
    def expr(self) -> Expression:
        assert self._expr is not None
        return self._expr


class VerifySpec(_Model):
    skeleton_max_fraction: float = Field(0.5, ge=0, le=1,
                                         description="the bare skeleton must score at most this "
                                                     "share of the points")


DEFAULT_STEPS: list[dict[str, Any]] = [{"load": {}}, {"unload": {}}]


class LabSpec(_Model):
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    title: str = Field(min_length=1)
    family: str | None = None
    instructions: str = Field(min_length=1, description="Markdown shown to students")
    module: str = Field(description="the .ko name the submission builds")
    submit: list[str] = Field(min_length=1, description="files every student hands in")
    allow_extra: list[str] = Field(default_factory=list,
                                   description="glob patterns of optional extra headers")
    provided: list[str] = Field(default_factory=list,
                                description="headers the grader adds (provided/ or modules/common)")
    templates: list[TemplateFile] = Field(default_factory=list)
    arches: list[ArchName] = Field(default_factory=lambda: list(registry.core_arches()),
                                   min_length=1, description="default: the registry's core arches")
    kernels: list[SeriesName] = Field(default_factory=lambda: list(registry.core_series()),
                                      min_length=1, description="default: the core series")
    grade_on: list[LabTarget] = Field(default_factory=list,
                                   description="targets grading runs on (default: first arch "
                                               "and first kernel)")
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    derived: dict[str, str] = Field(default_factory=dict,
                                    description="named expressions over parameters and the model")
    guest: GuestSpec = Field(default_factory=GuestSpec)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    shrink_slabs: bool = Field(True, description="shrink every slab cache before each snapshot")
    steps: list[Step] = Field(default_factory=lambda: [Step.model_validate(s)
                                                       for s in DEFAULT_STEPS])
    checks: list[Check] = Field(min_length=1)
    requires: list[Requirement] = Field(default_factory=list,
                                        description="harness preconditions (see Requirement)")
    tools: list[str] = Field(default_factory=list,
                             description="guest tools (kmodlab.guest_tools) the run steps use, "
                                         "installed in the guest before the steps")
    verify: VerifySpec = Field(default_factory=VerifySpec)
    config: list[str] = Field(default_factory=list,
                              description="kernel config fragments (kconfig/*.config) every "
                                          "target of the lab is built with")
    _derived: dict[str, Expression] = PrivateAttr(default_factory=dict)

    @field_validator("module")
    @classmethod
    def _module(cls, value: str) -> str:
        if not _IDENT.match(value) or len(value) > 55:
            raise ValueError(f"module name {value!r} must be a C identifier (at most 55 chars)")
        return value

    @field_validator("submit", "provided")
    @classmethod
    def _files(cls, files: list[str]) -> list[str]:
        for f in files:
            if not _FILE.match(f) or not f.endswith(SOURCE_EXTENSIONS):
                raise ValueError(f"{f!r} must be a plain file name ending in .c or .h")
        if len(set(files)) != len(files):
            raise ValueError("file names repeat")
        return files

    @field_validator("allow_extra")
    @classmethod
    def _extra(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            if "/" in p or not p.endswith(".h"):
                raise ValueError(f"allow_extra pattern {p!r} must match plain .h file names")
        return patterns

    @field_validator("kernels")
    @classmethod
    def _kernels(cls, kernels: list[str]) -> list[str]:
        for k in kernels:
            if not re.match(r"^\d+\.\d+", str(k)):
                raise ValueError(f"kernel {k!r} must be a series such as 6.1 or 6.12")
        return [str(k) for k in kernels]

    @field_validator("derived")
    @classmethod
    def _derived_syntax(cls, derived: dict[str, str]) -> dict[str, str]:
        for name, source in derived.items():
            try:
                _expr(source)
            except ValueError as exc:
                raise ValueError(f"derived {name!r}: {exc}") from None
        return {k: str(v) for k, v in derived.items()}

    @field_validator("config")
    @classmethod
    def _config(cls, names: list[str]) -> list[str]:
        from kmodlab.kernels.fragments import load_fragments

        try:
            return [f.name for f in load_fragments(names)]
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("tools")
    @classmethod
    def _tools(cls, tools: list[str]) -> list[str]:
        from kmodlab.guest_tools import TOOLS

        unknown = [t for t in tools if t not in TOOLS]
        if unknown:
            raise ValueError(f"unknown guest tool(s) {unknown}; known: {', '.join(TOOLS)}")
        return tools

    @field_validator("parameters")
    @classmethod
    def _params(cls, params: dict[str, Parameter]) -> dict[str, Parameter]:
        for name in params:
            if not _IDENT.match(name):
                raise ValueError(f"parameter name {name!r} is not an identifier")
        return params

    @model_validator(mode="after")
    def _consistent(self) -> LabSpec:
        c_files = [f for f in self.submit if f.endswith(".c")]
        if not c_files:
            raise ValueError("submit must list at least one .c file")
        if len(c_files) > 1 and f"{self.module}.c" in c_files:
            raise ValueError(f"with several .c files none may be called {self.module}.c "
                             "(kbuild would link the module into itself)")
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names must be unique; repeated: {', '.join(dupes)}")
        reserved = {"ktap", "read", "run", "model", "params", "events", "ncpus", "arch",
                    "kernel", "page_size", "before", "loaded", "after", "student", "shared"}
        for name in list(self.parameters) + list(self.derived):
            if name in reserved:
                raise ValueError(f"parameter/derived name {name!r} is reserved")
        for name, source in self.derived.items():
            if not _IDENT.match(name):
                raise ValueError(f"derived name {name!r} is not an identifier")
            self._derived[name] = _expr(source)
        kinds = [s.kind for s in self.steps]
        if kinds.count("load") != 1:
            raise ValueError("steps must load the module exactly once")
        if "build" in kinds and kinds.index("build") != 0:
            raise ValueError("'build' can only be the first step")
        if kinds.count("unload") > 1:
            raise ValueError("steps unload the module at most once")
        if "unload" in kinds and kinds.index("unload") < kinds.index("load"):
            raise ValueError("'unload' must come after 'load'")
        observed = {"before", "loaded", "after"}
        for step in self.steps:
            if step.kind == "observe":
                if step.observe.as_ in observed:  # type: ignore[union-attr]
                    raise ValueError(f"snapshot name {step.observe.as_!r} is already used "  # type: ignore[union-attr]
                                     "(before, loaded and after are automatic)")
                observed.add(step.observe.as_)  # type: ignore[union-attr]
        for target in self.grade_on:
            if target.arch not in self.arches or target.kernel not in self.kernels:
                raise ValueError(f"grade_on target {target} is not among the lab's arches "
                                 "and kernels")
        self._check_config()
        return self

    def _check_config(self) -> None:
        """The fragments apply to every target, and a lab with ``error_paths`` checks has
        fault injection in its kernels."""
        from kmodlab.faults.injection import REQUIRED
        from kmodlab.kernels.fragments import compose

        sweeps = [c.name for c in self.checks if c.error_paths is not None]
        for arch in self.arches:
            for series in self.kernels:
                try:
                    options = compose(self.config, arch, series).options
                except ConfigError as exc:
                    raise ValueError(f"config {', '.join(self.config)} on {arch} {series}: "
                                     f"{exc}") from None
                enabled = {r.option for r in options if "y" in r.allowed}
                missing = [o for o in REQUIRED if o not in enabled]
                if sweeps and missing:
                    raise ValueError(f"check {sweeps[0]!r} fails allocations on purpose: the "
                                     f"lab's kernels need fault injection (config: "
                                     f"[fault-injection]; missing {', '.join(missing)})")

    def lab_target(self, target: Target) -> Target:
        """``target`` with the lab's config fragments (a target given on the command line
        or by a test names only the arch and kernel)."""
        from kmodlab.kernels.fragments import split_names

        names = split_names([*filter(None, [target.config]), *self.config])
        return replace(target, config=",".join(names))

    # ---------------------------------------------------------------- derived views
    @property
    def derived_exprs(self) -> dict[str, Expression]:
        return dict(self._derived)

    @property
    def targets(self) -> list[Target]:
        """Every target of the lab's arches and kernels that the registry has."""
        return [self.lab_target(t) for t in registry.matrix(self.arches, self.kernels)]

    @property
    def grading_targets(self) -> list[Target]:
        return [self.lab_target(t) for t in self.grade_on] or self.targets[:1]

    @property
    def max_points(self) -> float:
        return sum(c.points for c in self.checks)

    def is_submittable(self, name: str) -> bool:
        return name in self.submit or any(fnmatch.fnmatchcase(name, p) for p in self.allow_extra)

    def public(self) -> LabSpec:
        """The lab without hidden checks (what students see and run locally)."""
        copy = self.model_copy(deep=True)
        copy.checks = [c for c in self.checks if not c.hidden]
        return copy
