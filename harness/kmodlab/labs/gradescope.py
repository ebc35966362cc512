"""``kmodlab lab gradescope``: a Gradescope autograder zip for a lab, and its ``results.json``.

    kmodlab lab gradescope kmalloc_waste --out autograder.zip [--target x86_64/6.1 ...]

The zip holds what Gradescope documents (``setup.sh`` and ``run_autograder`` at its root) and a
``kmodlab/`` folder: this kmodlab as a wheel, the pinned versions of its dependencies, the lab,
and the grading settings (:class:`AutograderConfig`).  ``setup.sh`` installs everything when
Gradescope builds the image and boots each grading guest once; ``run_autograder``
(:mod:`kmodlab.labs.gradescope_run`) grades one submission within the time limit.

This module turns a :class:`~kmodlab.labs.results.StudentResult` into ``results.json``
(:func:`gradescope_results`) and checks it against the JSON Schema written from Gradescope's
documentation (``gradescope/results.schema.yaml``, :func:`validate_results`).  A harness error
is never charged: no ``results.json`` is written, which Gradescope documents as an autograder
failure ("failed to run at no fault of the student"), and the instructor is told to rerun it.
docs/gradescope.md explains the choices.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import kmodlab
from kmodlab import registry
from kmodlab.errors import ConfigError, KmodlabError
from kmodlab.labs.escape import clean
from kmodlab.labs.lab import LAB_FILE, PROVIDED_DIR, SOLUTION_DIR, TEMPLATES_DIR, Lab
from kmodlab.labs.results import Outcome, StudentResult, TargetResult, merge_checks, summarize
from kmodlab.locate import CHECKOUT_ROOT, DATA_DIRS, in_checkout, package_file
from kmodlab.registry import Target

DATA_DIR = package_file("labs/gradescope")
SCHEMA_FILE = DATA_DIR / "results.schema.yaml"
SCHEMA_URL = "https://gradescope-autograders.readthedocs.io/en/latest/specs/"

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
STUDENT_IDS = ("email", "id")
WARM_MODES = ("solution", "kernels")
DEFAULT_TIME_LIMIT = 600.0
"""Gradescope's default timeout of an autograder run (10 minutes; at most 40)."""
GRADESCOPE_MAX_TIMEOUT = 2400.0
MIN_TIME_LIMIT = 60.0

# Where the image keeps kmodlab (outside /autograder, which Gradescope fills per submission).
VENV = "/opt/kmodlab/venv"
CACHE = "/opt/kmodlab/cache"
EXTRA_REQUIREMENTS = ("jsonschema",)
"""Installed beside kmodlab in the image: run_autograder validates results.json with it (it is
only in kmodlab's ``dev`` extra)."""

# Paths inside the zip (= inside /autograder/source).
KMODLAB_DIR = "kmodlab"
CONFIG_PATH = f"{KMODLAB_DIR}/config.json"
ENV_PATH = f"{KMODLAB_DIR}/autograder.env"
PINS_PATH = f"{KMODLAB_DIR}/pins.json"
CONSTRAINTS_PATH = f"{KMODLAB_DIR}/constraints.txt"
PACKAGES_PATH = f"{KMODLAB_DIR}/host-packages.txt"
SCHEMA_COPY_PATH = f"{KMODLAB_DIR}/results.schema.json"
LAB_DIR = f"{KMODLAB_DIR}/lab"
LAB_PARTS = (LAB_FILE, SOLUTION_DIR, PROVIDED_DIR, TEMPLATES_DIR)
"""What of a lab folder goes into the zip: what :func:`kmodlab.labs.lab.load_lab` reads, and
the solution that setup.sh grades to warm the image (instructor-only: the zip is not for
students)."""
_SKIP_FILE = re.compile(r"^\.|\.(pyc|o|ko|mod|cmd)$|^__pycache__$")

OUTPUT_LIMIT = 8000
DETAILS_LIMIT = 30_000


class GradescopeError(KmodlabError):
    """The autograder zip cannot be built as asked (the message says what to change)."""


# ------------------------------------------------------------------------------ settings
def time_margin(time_limit: float) -> float:
    """Seconds kept back from the time limit to stop grading and write results.json: 5 %,
    at least 15 s (stopping a guest takes up to 10) and at most a minute."""
    return min(60.0, max(15.0, 0.05 * time_limit))


@dataclass(frozen=True)
class AutograderConfig:
    """What ``run_autograder`` grades and how (``kmodlab/config.json`` in the zip)."""

    lab: str                         # the lab folder, relative to /autograder/source
    targets: tuple[str, ...]         # target specs (x86_64:6.1), graded in this order
    time_limit: float = DEFAULT_TIME_LIMIT
    hidden_visibility: str = "after_published"
    student_id: str = "email"        # which submission_metadata.json user field seeds parameters
    warm: str = "solution"
    kmodlab_version: str = kmodlab.__version__
    lab_id: str = ""
    lab_digest: str = ""
    max_score: float = 0.0
    built: dict[str, Any] = field(default_factory=dict)

    FORMAT = 1

    def __post_init__(self) -> None:
        if not self.targets:
            raise ConfigError("an autograder needs at least one target")
        if not self.time_limit >= MIN_TIME_LIMIT:
            raise ConfigError(f"time limit {self.time_limit:g} s: give at least "
                              f"{MIN_TIME_LIMIT:g} s (a cold guest alone can take a minute)")
        if self.hidden_visibility not in VISIBILITIES:
            raise ConfigError(f"visibility {self.hidden_visibility!r}: one of "
                              f"{', '.join(VISIBILITIES)}")
        if self.student_id not in STUDENT_IDS:
            raise ConfigError(f"student id {self.student_id!r}: one of {', '.join(STUDENT_IDS)}")
        if self.warm not in WARM_MODES:
            raise ConfigError(f"warm-up {self.warm!r}: one of {', '.join(WARM_MODES)}")

    @property
    def margin(self) -> float:
        return time_margin(self.time_limit)

    def to_json(self) -> str:
        data = {"format": self.FORMAT, **asdict(self)}
        data["targets"] = list(self.targets)
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> AutograderConfig:
        data = json.loads(text)
        if data.pop("format", None) != cls.FORMAT:
            raise ConfigError("this autograder's config.json is of another kmodlab version: "
                              "build the zip again with the kmodlab it installs")
        data["targets"] = tuple(data["targets"])
        return cls(**data)

    def lab_targets(self, lab: Lab, pins: Mapping[str, Mapping[str, str]] | None = None
                    ) -> list[Target]:
        """The targets to grade on, each with the lab's config fragments; ``pins`` (from the
        image's warm-up) replace a series by the exact kernel release the image holds."""
        pins = pins or {}
        out = []
        for spec in self.targets:
            pin = pins.get(spec)
            if pin:         # a release can hold '+' (6.12.118+deb12): never parsed as a spec
                target = registry.target(pin["arch"], pin["kernel"], pin.get("flavour") or None)
            else:
                target = registry.parse_target(spec)
            out.append(lab.spec.lab_target(target))
        return out


def load_config(source: Path) -> AutograderConfig:
    path = source / CONFIG_PATH
    try:
        return AutograderConfig.from_json(path.read_text())
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"cannot read the autograder settings {path}: {exc}") from None


def load_pins(source: Path) -> dict[str, dict[str, str]]:
    """Target spec -> the exact kernel (arch, kernel, flavour) the image's warm-up provisioned
    ({} before it ran)."""
    try:
        data = json.loads((source / PINS_PATH).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {source / PINS_PATH}: {exc}") from None
    return {str(k): {f: str(v.get(f, "")) for f in ("arch", "kernel", "flavour")}
            for k, v in data.items() if isinstance(v, dict)}


def target_to_json(target: Target) -> str:
    """A target for another process (its spec string cannot carry a release with '+')."""
    return json.dumps(asdict(target), sort_keys=True)


def target_from_json(text: str) -> Target:
    data = json.loads(text)
    return registry.target(data["arch"], data["kernel"], data.get("flavour") or None,
                           data.get("config") or None)


def parse_target_arg(text: str) -> Target:
    """``--target``: ``ARCH/SERIES`` or kmodlab's ``ARCH:KERNEL[:FLAVOUR][+CONFIG]``."""
    spec = text.strip()
    if "/" in spec and ":" not in spec:
        spec = spec.replace("/", ":", 1)
    return registry.parse_target(spec)


def resolve_targets(lab: Lab, texts: Sequence[str] | None) -> list[Target]:
    """The grading targets: the lab's own (grade_on) by default; given ones must be among the
    lab's arches and kernels, where its author checked it (``kmodlab lab verify``)."""
    if not texts:
        return list(lab.spec.grading_targets)
    out: list[Target] = []
    for text in texts:
        target = parse_target_arg(text)
        if target.arch not in lab.spec.arches or target.series not in lab.spec.kernels:
            raise GradescopeError(
                f"target {text} is not one of {lab.id}'s: its arches are "
                f"{', '.join(lab.spec.arches)} and its kernels {', '.join(lab.spec.kernels)}")
        target = lab.spec.lab_target(target)
        if target not in out:
            out.append(target)
    return out


# ------------------------------------------------------------------------------ schema
@cache
def load_schema() -> dict[str, Any]:
    """The JSON Schema of results.json (see the header of results.schema.yaml for its source)."""
    import yaml

    return yaml.safe_load(SCHEMA_FILE.read_text())


def schema_problems(data: Any) -> list[str]:
    """Every way ``data`` breaks the schema, as ``path: message`` lines ([] when valid)."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        raise GradescopeError("validating results.json needs the jsonschema package "
                              "(pip install jsonschema; the autograder image has it)") from None
    validator = Draft202012Validator(load_schema())
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.append(f"{where}: {error.message}")
    return problems


def validate_results(data: Any) -> None:
    """Raise GradescopeError unless ``data`` is a valid results.json."""
    problems = schema_problems(data)
    if problems:
        raise GradescopeError("results.json does not follow Gradescope's format:\n  "
                              + "\n  ".join(problems[:20]))


# ------------------------------------------------------------------------------ results
def combine_results(lab: Lab, parts: Sequence[StudentResult]) -> StudentResult | None:
    """One result from per-target results (run_autograder grades each target in its own
    process): checks merged as :func:`~kmodlab.labs.grader.grade_submission` merges them (a
    check earns its points only if it passed on every target).  None when nothing was graded."""
    targets = [t for p in parts for t in p.targets]
    if not parts or not targets:
        return None
    first = parts[0]
    outcome, checks, score = summarize(targets)
    return StudentResult(first.student, lab.id, lab.digest, first.submission_digest, outcome,
                         score, first.max_score, checks, targets, first.params,
                         list(first.notes), first.graded_at, round(sum(p.seconds for p in parts), 3),
                         sum(p.attempts for p in parts), first.public_only)


def harness_result(lab: Lab, target: str, student: str, error: str,
                   params: Mapping[str, Any] | None = None) -> StudentResult:
    """A result that says the grader failed on ``target`` (never charged)."""
    from kmodlab.labs.checks import not_run

    rows = not_run(list(lab.spec.checks), "not run: harness error (not charged)")
    target_result = TargetResult(target, Outcome.HARNESS_ERROR, rows, error=error)
    return StudentResult(student, lab.id, lab.digest, "", Outcome.HARNESS_ERROR, None,
                         lab.spec.max_points, merge_checks([target_result]), [target_result],
                         dict(params or {}),
                         graded_at=datetime.now(UTC).isoformat(timespec="seconds"))


def chargeable(result: StudentResult | None) -> bool:
    """May this result be given a score?  Not when nothing was graded, nor after a harness
    error on any target (the submission's fault is unknown: kmodlab never charges that)."""
    return (result is not None and bool(result.targets)
            and result.outcome is not Outcome.HARNESS_ERROR and result.score is not None)


def _check_output(check: Any) -> str:
    lines = []
    if check.status == "failed":
        if check.description:
            lines.append(check.description)
        if check.expected:
            lines.append(f"expected: {check.expected}")
        if check.observed:
            lines.append(f"observed: {check.observed}")
    if check.message:
        lines.append(check.message)
    return clean("\n".join(lines), OUTPUT_LIMIT)


def _target_test(target: TargetResult) -> dict[str, Any]:
    """An informational test (no score) per kernel: its outcome, the compiler's output and the
    kernel's report, in a <pre> block where Gradescope shows test output."""
    parts = [f"{target.target}: {target.outcome.label}"]
    if target.build_output:
        heading = ("compiler output:" if target.outcome is Outcome.COMPILE_ERROR
                   else "compiler warnings:")
        parts += ["", heading, target.build_output]
    if target.crash:
        parts += ["", "kernel report:" if target.outcome is Outcome.CRASH else "what hung:",
                  target.crash]
    if target.notes:
        parts += ["", "notes:", *(f"- {n}" for n in target.notes)]
    return {"name": f"{target.target}: build and run",
            "status": "passed" if target.outcome is Outcome.PASSED else "failed",
            "output": clean("\n".join(parts), DETAILS_LIMIT), "output_format": "text",
            "visibility": "visible"}


def gradescope_results(lab: Lab, result: StudentResult | None, config: AutograderConfig, *,
                       seconds: float, not_graded: Mapping[str, str] | None = None,
                       notes: Sequence[str] = ()) -> dict[str, Any] | None:
    """results.json for ``result``, or None when it must not be scored (:func:`chargeable`).

    ``not_graded`` maps the targets the time limit left out to why; the score then counts only
    the targets that ran (a failure seen is a failure; a target not run can only have lowered
    the score), and ``output`` says so.  ``notes`` go into ``output`` (e.g. which student id
    chose the parameters).  All text is ``"text"`` format: compiler output and kernel logs are
    shown as they are, never rendered as HTML or Markdown.
    """
    if result is None or not chargeable(result):
        return None
    assert result.score is not None
    not_graded = dict(not_graded or {})
    graded_on = ", ".join(t.target for t in result.targets)
    lines = [lab.title, "",
             (f"Result: {result.outcome.label}, {result.score:g} / {result.max_score:g} points "
              f"(graded on {graded_on}).")]
    if result.params:
        lines.append("Your parameters: " + ", ".join(f"{k} = {v}"
                                                     for k, v in result.params.items()))
    lines += list(notes)
    if not_graded:
        lines += ["", "PARTIAL RESULT: not everything was graded."]
        lines += [f"- not graded on {t}: {why}" for t, why in not_graded.items()]
        lines.append("The score counts only the kernels that were graded, so a regrade can lower "
                     "it.  Course staff: raise the time limit (kmodlab lab gradescope "
                     "--time-limit, and the assignment's timeout) and regrade.")
    if result.notes:
        lines += ["", "Files:", *(f"- {n}" for n in result.notes)]
    if any(c.hidden for c in result.checks) and config.hidden_visibility != "visible":
        lines += ["", "Some checks are hidden until "
                  + {"hidden": "never (they are for the course staff)",
                     "after_due_date": "the due date",
                     "after_published": "the grades are published"}[config.hidden_visibility]
                  + "."]
    lines += ["", ("Below: one test per check, and one per kernel with the compiler output "
                   "and any kernel report.")]
    tests = []
    for check in result.checks:
        tests.append({
            "name": check.name, "score": check.points, "max_score": check.max_points,
            "status": "passed" if check.passed else "failed",
            "output": _check_output(check), "output_format": "text",
            "visibility": config.hidden_visibility if check.hidden else "visible"})
    tests += [_target_test(t) for t in result.targets]
    return {
        "score": result.score,
        "execution_time": max(0, round(seconds)),
        "output": clean("\n".join(lines), DETAILS_LIMIT),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {
            "kmodlab": config.kmodlab_version, "lab": lab.id, "lab_digest": lab.digest,
            "student": result.student, "submission_digest": result.submission_digest,
            "outcome": result.outcome.value, "params": result.params,
            "targets": {t.target: t.outcome.value for t in result.targets},
            "partial": bool(not_graded), "not_graded": not_graded,
            "attempts": result.attempts, "graded_at": result.graded_at,
        },
    }


def instructor_report(result: StudentResult | None, config: AutograderConfig,
                      not_graded: Mapping[str, str] | None = None) -> str:
    """What run_autograder prints (Gradescope shows its stdout to course staff only) when it
    writes no results.json because the submission cannot be scored."""
    not_graded = dict(not_graded or {})
    lines = ["kmodlab: NOT GRADED, and not the student's fault."]
    errors = [t for t in (result.targets if result else []) if t.outcome is Outcome.HARNESS_ERROR]
    if errors:
        lines.append("The grader failed (a harness error, retried once already):")
        for t in errors:
            first = (t.error or "no message").strip().splitlines()
            lines.append(f"  {t.target}: " + "\n    ".join(first[:12]))
    for target, why in not_graded.items():
        lines.append(f"  {target}: not graded: {why}")
    if not errors and not_graded:
        lines.append(f"The time limit ({config.time_limit:g} s) is too short for this lab on "
                     "Gradescope: build the zip again with a larger --time-limit (and raise the "
                     "assignment's timeout to match).")
    lines.append("No results.json was written: Gradescope shows \"The autograder failed to "
                 "execute correctly\" and records no score, so the student is not penalised.")
    lines.append("What to do: if the message above names something the image lacks (a package, "
                 "the build jail, QEMU, a kernel), fix it and upload the zip again; then use "
                 "\"Rerun Autograder\" on this submission, or \"Regrade All Submissions\".")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ the zip
@dataclass
class AutograderZip:
    """A written autograder.zip: where, what it holds, and what the instructor should know."""

    path: Path
    config: AutograderConfig
    entries: list[str]
    wheel: str
    warnings: list[str] = field(default_factory=list)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(CHECKOUT_ROOT), *args], capture_output=True,
                             text=True, check=False, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def checkout_state() -> dict[str, Any]:
    """The commit of this kmodlab's checkout, and whether what the wheel is built from (new
    files included) differs from it."""
    commit = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--", "pyproject.toml", "setup.py", "README.md",
                   "harness", *DATA_DIRS) if commit else ""
    return {"commit": commit or None, "dirty": bool(changed) if commit else None}


def _setuptools_ok() -> bool:
    """Can pip build without build isolation here (setuptools>=77, as pyproject.toml needs)?"""
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0]) >= 77
    except (ImportError, ValueError, LookupError):
        return False


def build_wheel(dest: Path) -> Path:
    """A wheel of this kmodlab, built from its checkout into ``dest``.

    Built from a copy of the tree (setuptools builds in place and would leave build/ in the
    checkout), offline when setuptools is recent enough, with the zip timestamps fixed
    (SOURCE_DATE_EPOCH) so that the same tree gives the same wheel."""
    if not in_checkout():
        raise GradescopeError(
            "this kmodlab is installed from a wheel, not run from its source tree: give that "
            "wheel with --wheel PATH (kmodlab-VERSION-py3-none-any.whl) so the autograder "
            "installs exactly it")
    work = Path(tempfile.mkdtemp(prefix="kmodlab-wheel-"))
    try:
        src = work / "src"
        src.mkdir()
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy2(CHECKOUT_ROOT / name, src / name)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".*")
        for name in ("harness", *DATA_DIRS):
            shutil.copytree(CHECKOUT_ROOT / name, src / name, ignore=skip, symlinks=True)
        argv = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest)]
        if _setuptools_ok():
            argv.append("--no-build-isolation")
        env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        proc = subprocess.run([*argv, str(src)], capture_output=True, text=True, env=env,
                              check=False, timeout=600)
        if proc.returncode != 0:
            raise GradescopeError("building kmodlab's wheel failed:\n"
                                  + (proc.stderr or proc.stdout)[-3000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wheels = sorted(dest.glob(f"kmodlab-{kmodlab.__version__}-*.whl"))
    if not wheels:
        raise GradescopeError(f"pip built no kmodlab-{kmodlab.__version__} wheel in {dest}")
    return wheels[0]


def check_wheel(path: Path) -> None:
    """A wheel given with --wheel must be this kmodlab's version (config.json's format is)."""
    name = path.name
    if not (path.is_file() and name.startswith(f"kmodlab-{kmodlab.__version__}-")
            and name.endswith(".whl")):
        raise GradescopeError(f"--wheel {path}: give kmodlab-{kmodlab.__version__}-...whl, the "
                              "wheel of this kmodlab (the zip's settings are this version's)")
    try:
        with zipfile.ZipFile(path) as zf:
            zf.getinfo("kmodlab/__init__.py")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise GradescopeError(f"--wheel {path} is not a kmodlab wheel: {exc}") from None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_pins(roots: Iterable[str]) -> list[str]:
    """``name==version`` for every installed distribution that ``roots`` need, transitively
    (extras left out, markers evaluated here): the versions this kmodlab was tested with."""
    from importlib import metadata

    from packaging.requirements import InvalidRequirement, Requirement

    pins: dict[str, str] = {}
    queue = list(roots)
    while queue:
        try:
            req = Requirement(queue.pop())
        except InvalidRequirement:
            continue
        name = _canonical(req.name)
        if name in pins or name == "kmodlab":
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        pins[name] = dist.version
        for line in dist.requires or []:
            try:
                sub = Requirement(line)
            except InvalidRequirement:
                continue
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                queue.append(line)
    return [f"{n}=={v}" for n, v in sorted(pins.items())]


def kmodlab_requirements() -> list[str]:
    """kmodlab's own dependencies (no extras), from its installed metadata."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        lines = metadata.requires("kmodlab") or []
    except metadata.PackageNotFoundError:
        lines = []
    out = []
    for line in lines:
        marker = Requirement(line).marker
        if marker is None or marker.evaluate({"extra": ""}):
            out.append(line)
    return out


def _lab_files(lab: Lab) -> dict[str, bytes]:
    """The lab's files for the zip, relative to the lab folder."""
    out: dict[str, bytes] = {}
    for part in LAB_PARTS:
        path = lab.path / part
        if path.is_file() and not path.is_symlink():
            out[part] = path.read_bytes()
        elif path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not _SKIP_FILE.search(d)
                                 and not (Path(root) / d).is_symlink())
                for name in sorted(files):
                    file = Path(root) / name
                    if _SKIP_FILE.search(name) or file.is_symlink() or not file.is_file():
                        continue
                    out[file.relative_to(lab.path).as_posix()] = file.read_bytes()
    return out


def _shell_assign(name: str, value: str) -> str:
    import shlex

    return f"{name}={shlex.quote(value)}"


def autograder_files(lab: Lab, config: AutograderConfig, wheel_name: str, wheel: bytes,
                     constraints: Sequence[str]) -> dict[str, tuple[bytes, int]]:
    """Every file of the zip: path -> (content, mode).  No side effects (tests use it to lay
    out a simulated /autograder/source without building a wheel)."""
    files: dict[str, tuple[bytes, int]] = {
        "setup.sh": ((DATA_DIR / "setup.sh").read_bytes(), 0o755),
        "run_autograder": ((DATA_DIR / "run_autograder.sh").read_bytes(), 0o755),
        CONFIG_PATH: (config.to_json().encode(), 0o644),
        PACKAGES_PATH: (package_file("host-packages.txt").read_bytes(), 0o644),
        CONSTRAINTS_PATH: (("# the versions kmodlab was built with (pip -c); written by "
                            "kmodlab lab gradescope\n" + "".join(f"{c}\n" for c in constraints)
                            ).encode(), 0o644),
        SCHEMA_COPY_PATH: ((json.dumps(load_schema(), indent=2) + "\n").encode(), 0o644),
        f"{KMODLAB_DIR}/{wheel_name}": (wheel, 0o644),
    }
    env = [
        (f"# kmodlab {config.kmodlab_version} autograder for {lab.id}; written by kmodlab lab "
         "gradescope, read by setup.sh and run_autograder"),
        _shell_assign("KMODLAB_GS_VERSION", config.kmodlab_version),
        _shell_assign("KMODLAB_GS_WHEEL", wheel_name),
        _shell_assign("KMODLAB_GS_WHEEL_SHA256", hashlib.sha256(wheel).hexdigest()),
        _shell_assign("KMODLAB_GS_VENV", VENV),
        _shell_assign("KMODLAB_GS_CACHE", CACHE),
        _shell_assign("KMODLAB_GS_EXTRA", " ".join(EXTRA_REQUIREMENTS)),
    ]
    files[ENV_PATH] = (("\n".join(env) + "\n").encode(), 0o644)
    for rel, data in _lab_files(lab).items():
        files[f"{config.lab}/{rel}"] = (data, 0o644)
    return files


def write_zip(out: Path, files: Mapping[str, tuple[bytes, int]]) -> None:
    """Files at the zip's root (Gradescope looks there), sorted, with fixed timestamps and Unix
    modes (run_autograder and setup.sh executable); written aside, then renamed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                data, mode = files[name]
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o100000 | mode) << 16
                info.create_system = 3            # Unix: unzip then applies the modes
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def build_autograder(lab: Lab, out: Path, *, targets: Sequence[str] | None = None,
                     time_limit: float = DEFAULT_TIME_LIMIT,
                     hidden_visibility: str = "after_published", student_id: str = "email",
                     warm: str = "solution", wheel: Path | None = None) -> AutograderZip:
    """Write the Gradescope autograder zip of ``lab`` to ``out`` (see the module doc)."""
    chosen = resolve_targets(lab, targets)
    warnings: list[str] = []
    if warm == "solution" and not lab.has_solution:
        raise GradescopeError(f"{lab.id} has no {SOLUTION_DIR}/ to warm the image with: give "
                              "--warm kernels (the first submissions then boot cold)")
    if time_limit > GRADESCOPE_MAX_TIMEOUT:
        warnings.append(f"a time limit of {time_limit:g} s is more than the 40 minutes "
                        "Gradescope allows an autograder run")
    if any(t.config for t in chosen):
        warnings.append("a target with config fragments builds its kernel from Debian's source "
                        "while Gradescope builds the image (an hour or more under TCG)")
    config = AutograderConfig(       # checks the settings before the wheel is built
        lab=f"{LAB_DIR}/{lab.path.name}", targets=tuple(t.spec for t in chosen),
        time_limit=float(time_limit), hidden_visibility=hidden_visibility,
        student_id=student_id, warm=warm, lab_id=lab.id, lab_digest=lab.digest,
        max_score=lab.spec.max_points)
    built: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                             "python": platform.python_version()}
    with tempfile.TemporaryDirectory(prefix="kmodlab-gradescope-") as tmp:
        if wheel is None:
            wheel_path = build_wheel(Path(tmp))
            state = checkout_state()
            built.update(source="checkout", **state)
            if state.get("dirty"):
                warnings.append(f"the wheel holds uncommitted changes of {CHECKOUT_ROOT} "
                                f"(commit {str(state['commit'])[:12]})")
        else:
            check_wheel(wheel)
            wheel_path = wheel
            built.update(source="wheel")
        wheel_bytes = wheel_path.read_bytes()
        built["wheel_sha256"] = hashlib.sha256(wheel_bytes).hexdigest()
        config = replace(config, built=built)
        constraints = dependency_pins(["pip", *kmodlab_requirements(), *EXTRA_REQUIREMENTS])
        files = autograder_files(lab, config, wheel_path.name, wheel_bytes, constraints)
        write_zip(out, files)
    return AutograderZip(out, config, sorted(files), wheel_path.name, warnings)


# ------------------------------------------------------------------------------ the command
def cmd_gradescope(args: argparse.Namespace) -> int:
    """``kmodlab lab gradescope`` (registered in kmodlab.labs.cli)."""
    from kmodlab.labs.lab import load_lab

    lab = load_lab(args.lab)
    made = build_autograder(lab, Path(args.out), targets=args.target,
                            time_limit=args.time_limit, hidden_visibility=args.hidden_visibility,
                            student_id=args.student_id, warm=args.warm,
                            wheel=Path(args.wheel) if args.wheel else None)
    cfg = made.config
    print(f"{made.path}: Gradescope autograder for {lab.id} (kmodlab {cfg.kmodlab_version}, "
          f"{made.wheel})")
    print(f"  grades on {', '.join(cfg.targets)}; {cfg.max_score:g} points; time limit "
          f"{cfg.time_limit:g} s (grading stops {cfg.margin:g} s before it)")
    print("  on Gradescope: base image Ubuntu 22.04 or newer; set the autograder points to "
          f"{cfg.max_score:g} and the timeout to at least {cfg.time_limit / 60:g} min; give "
          f"the container more memory than the guest's {lab.spec.guest.memory_mb} MiB plus 1 "
          "GiB, and more than the default half CPU")
    print(f"  students find their parameters with: kmodlab lab params {lab.id} --student "
          f"<their Gradescope {cfg.student_id}>")
    for warning in made.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    return 0
