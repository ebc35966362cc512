"""The Gradescope autograder zip, for real: built for a lab, unpacked into a simulated
/autograder, its setup.sh run into a fresh venv (the warm-up grades the solution in a real guest),
then its run_autograder on the lab's synthetic class: each results.json is valid against
Gradescope's schema and carries the outcome the lab's tests/expected.yaml names.

What needs Gradescope itself (its Ubuntu image, its Docker limits, its UI) is listed in
docs/gradescope.md; here apt is skipped (KMODLAB_AUTOGRADER_SKIP_APT: the CI machine has the
packages) and the kernel cache is the test session's, so nothing is downloaded twice.

Tiers (tests/integration/conftest.py, integration_tiers.py).  ``kmalloc_waste`` is graded with a
zip built for the matrix kernel: the ci tier runs it on the matrix's first kernel with the
submissions of ``SUBMISSIONS``; the full tier on every kernel of the matrix, with every
submission the lab declares.  The full tier also grades every other sample lab's whole class,
each with the zip ``kmodlab lab gradescope LAB`` writes by default: built for the lab's own
grading targets (``grade_on``, with its config fragments), so a lab whose kernel is outside the
core matrix (high_memory: i386) or built from source (error_paths) is graded where it is meant
to be, whatever ``--kmodlab-arch``/``--kmodlab-kernel`` say (as test_labs.py's off-matrix tests
do).  The ci tier reports those as skipped.  One zip, one venv and one warm-up per lab (a
module-scoped fixture), then one run_autograder per submission."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from autograder_zip import unpack

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import gradescope as gs
from kmodlab.labs import list_labs, load_lab
from kmodlab.labs.lab import Lab
from kmodlab.paths import cache_root

pytestmark = pytest.mark.integration

TIER = os.environ.get("KMODLAB_TIER", "full")
LAB = "kmalloc_waste"
SUBMISSIONS = ("correct", "crashing", "hanging", "leaking", "malicious")
"""The kmalloc_waste submissions the ci tier grades through the zip; the full tier grades every
one the lab declares (tests/expected.yaml) and has a folder for."""
TIME_LIMIT = 300
SWEPT_TIME_LIMIT = gs.GRADESCOPE_MAX_TIMEOUT
"""A lab with error_paths checks sweeps each submission's allocations, a guest per failed call
(labs/error_paths: 211 s for the correct submission, minutes for the evasive one, README): it
gets the most Gradescope allows."""
SETUP_TIMEOUT = 1800
SOURCE_BUILD_TIMEOUT = 1800
"""Added to setup.sh's timeout for a lab with config fragments: its warm-up builds the kernel
from Debian's source unless the session's cache has it (~5 min on x86_64, docs/labs.md)."""

FULL_ONLY = pytest.mark.skipif(
    TIER != "full",
    reason="ci tier: every sample lab's class through its own autograder zip (a wheel, a venv, "
           "a warm-up and a class per lab) is left to KMODLAB_TIER=full; the ci tier grades "
           f"{LAB}'s {', '.join(SUBMISSIONS)}")

SIMULATED_ROOT_GAPS: dict[str, str] = {}
"""Lab id -> why the simulated root cannot give it the guest it needs (its cases are skipped with
that reason).  None today: the simulated root differs from Gradescope's only in apt (skipped:
the host has the packages), the venv's path and the kernel cache (the session's), and every
sample lab's guest is one the venv's kmodlab makes there as on Gradescope: extra CPUs
(percpu_counters) and memory (high_memory, 1536 MiB), boot words (slab_cache, fragmented_memory),
the guest tool kml_fragment (its C file ships in the wheel), the shared-memory device
(device_memory), an i386 kernel (high_memory) and a kernel built from source with fragments
(error_paths: kconfig/ ships in the wheel, and the build is cached by its inputs' text)."""


DECLARED_KEYS = {"outcome", "fails", "output_contains", "hang_contains"}
"""What a submission's entry in tests/expected.yaml may say (test_labs.py checks the same): a key
this test does not know fails the case rather than going unchecked."""


def expectations(lab: Lab) -> dict[str, dict]:
    """What the lab declares its synthetic submissions must get (test_labs.py reads the same)."""
    return yaml.safe_load((lab.path / "tests" / "expected.yaml").read_text())


def synthetic_class(lab: Lab) -> list[str]:
    """Every submission the lab declares or has a folder for: a folder without a declaration
    (or the reverse) is a case that fails, never one left out."""
    folders = {p.name for p in (lab.path / "tests" / "submissions").iterdir() if p.is_dir()}
    return sorted(folders | set(expectations(lab)))


def time_limit_for(lab: Lab) -> float:
    swept = any(c.error_paths is not None for c in lab.spec.checks)
    return SWEPT_TIME_LIMIT if swept else TIME_LIMIT


def _set_up(lab: Lab, work: Path, targets: list[str] | None, time_limit: float
            ) -> dict[str, object]:
    """The zip of ``lab`` (``targets``: None for the lab's grade_on), unpacked and set up as
    Gradescope's image build would."""
    archive = work / "autograder.zip"
    made = gs.build_autograder(lab, archive, targets=targets, time_limit=time_limit)
    root = work / "autograder"
    unpack(archive, root / "source")
    env = {**os.environ, "KMODLAB_AUTOGRADER_ROOT": str(root),
           "KMODLAB_VENV": str(work / "venv"), "KMODLAB_CACHE": str(cache_root()),
           "KMODLAB_AUTOGRADER_SKIP_APT": "1"}
    timeout = SETUP_TIMEOUT + (SOURCE_BUILD_TIMEOUT if lab.spec.config else 0)
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, cwd=work,
                           capture_output=True, text=True, timeout=timeout, check=False)
    assert setup.returncode == 0, (setup.stdout + setup.stderr)[-4000:]
    return {"lab": lab, "root": root, "env": env, "time_limit": time_limit,
            "targets": list(made.config.targets)}


@pytest.fixture(scope="module")
def image(kernel: Kernel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The zip of kmalloc_waste for ``kernel``'s target, unpacked and set up."""
    return _set_up(load_lab(LAB), tmp_path_factory.mktemp("gradescope"),
                   [f"{kernel.arch}:{kernel.series}"], TIME_LIMIT)


@pytest.fixture(scope="module")
def lab_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[dict[str, object]]:
    """The zip of the lab ``request.param`` for its own grading targets (``kmodlab lab
    gradescope LAB``'s default), unpacked and set up: once per lab, for its whole class."""
    lab = load_lab(request.param)
    work = tmp_path_factory.mktemp(f"gradescope-{lab.id}")
    yield _set_up(lab, work, None, time_limit_for(lab))
    shutil.rmtree(work / "venv", ignore_errors=True)     # a venv per lab: keep the disk


def _grade(image: dict[str, object], submission: Path, student: str
           ) -> tuple[subprocess.CompletedProcess[str], dict | None]:
    root = image["root"]
    assert isinstance(root, Path)
    sub = root / "submission"
    if sub.exists():
        subprocess.run(["rm", "-rf", str(sub), str(root / "results")], check=True)
    sub.mkdir(parents=True)
    for f in submission.iterdir():
        (sub / f.name).write_bytes(f.read_bytes())
    (root / "submission_metadata.json").write_text(json.dumps(
        {"users": [{"email": f"{student}@example.edu", "id": 1, "name": student}]}))
    limit = float(image.get("time_limit", TIME_LIMIT))                   # type: ignore[arg-type]
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=image["env"],
                          cwd=root, capture_output=True, text=True, timeout=limit + 60,
                          check=False)
    results = root / "results" / "results.json"
    return proc, json.loads(results.read_text()) if results.is_file() else None


def grade_declared(image: dict[str, object], name: str) -> None:
    """Grade the lab's synthetic submission ``name`` with run_autograder and check results.json
    against what the lab declares for it (tests/expected.yaml): the outcome, the checks that must
    fail, the compiler output a refusal must show, who noticed a hang; the score follows the
    outcome (full marks exactly for a pass, 0 for a compile error, less than full otherwise)."""
    lab = image["lab"]
    assert isinstance(lab, Lab)
    declared = expectations(lab)
    folder = lab.path / "tests" / "submissions" / name
    assert name in declared, f"{lab.id}: tests/expected.yaml declares no outcome for {name}"
    assert folder.is_dir(), f"{lab.id}: tests/expected.yaml declares {name}, which has no folder"
    expected = declared[name]
    unknown = set(expected) - DECLARED_KEYS
    assert not unknown, f"{lab.id}/{name} declares {sorted(unknown)}: this test checks no such key"
    proc, data = _grade(image, folder, name)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert data is not None, "a student outcome always has a results.json"
    gs.validate_results(data)                       # Gradescope's documented format
    assert data["extra_data"]["outcome"] == expected["outcome"], data["output"][-2000:]
    assert not data["extra_data"]["partial"], data["output"][-2000:]    # every target graded
    targets = image["targets"]
    assert isinstance(targets, list)
    assert len(data["extra_data"]["targets"]) == len(targets), data["extra_data"]
    max_points = lab.spec.max_points
    assert 0 <= data["score"] <= max_points
    if expected["outcome"] == "passed":
        assert data["score"] == max_points
    else:
        assert data["score"] < max_points
    if expected["outcome"] == "compile_error":
        assert data["score"] == 0
    failed = {t["name"] for t in data["tests"] if t["status"] == "failed"}
    missing = [check for check in expected.get("fails", []) if check not in failed]
    assert not missing, f"expected {missing} to fail:\n{data['output'][-2000:]}"
    # the compiler's output, and what hung, are in each target's informational test
    shown = "\n".join([data["output"], *(t.get("output", "") for t in data["tests"])])
    for key in ("output_contains", "hang_contains"):
        if key in expected:
            assert expected[key] in shown, shown[-3000:]
    # nothing from the host in what the student sees (the malicious ones include /etc/passwd)
    assert "root:x:0:0" not in json.dumps(data)


KMALLOC_WASTE_CASES = [
    pytest.param(name, marks=() if name in SUBMISSIONS else FULL_ONLY)
    for name in synthetic_class(load_lab(LAB))]


@pytest.mark.parametrize("name", KMALLOC_WASTE_CASES)
def test_run_autograder_grades_the_synthetic_class(image: dict[str, object], name: str) -> None:
    grade_declared(image, name)


def _case_marks(lab: Lab) -> list[pytest.MarkDecorator]:
    marks = [FULL_ONLY]
    if lab.id in SIMULATED_ROOT_GAPS:
        marks.append(pytest.mark.skip(
            reason=f"{lab.id}: the simulated /autograder cannot give it its guest: "
                   f"{SIMULATED_ROOT_GAPS[lab.id]}"))
    return marks


OTHER_LABS = [lab for lab in list_labs() if lab.id != LAB]
EVERY_LAB_CASES = [pytest.param(lab.id, name, id=f"{lab.id}-{name}", marks=_case_marks(lab))
                   for lab in OTHER_LABS for name in synthetic_class(lab)]
assert not set(SIMULATED_ROOT_GAPS) - {lab.id for lab in OTHER_LABS}, \
    f"SIMULATED_ROOT_GAPS names no sample lab: {set(SIMULATED_ROOT_GAPS)}"


@pytest.mark.parametrize("lab_image, name", EVERY_LAB_CASES, indirect=["lab_image"])
def test_every_lab_zip_grades_its_synthetic_class(lab_image: dict[str, object],
                                                  name: str) -> None:
    """Every other sample lab, with the zip made for its grading targets: each submission of
    its synthetic class gets the results.json its tests/expected.yaml declares."""
    grade_declared(lab_image, name)


def test_a_harness_failure_is_never_charged(image: dict[str, object], tmp_path: Path) -> None:
    """A broken image (its venv gone) writes no results.json: Gradescope shows an autograder
    failure to the staff instead of a score, and the student is not charged."""
    env = dict(image["env"])                                         # type: ignore[arg-type]
    env["KMODLAB_VENV"] = str(tmp_path / "no-venv")
    lab = image["lab"]
    proc, data = _grade({**image, "env": env},
                        lab.path / "tests" / "submissions" / "correct",  # type: ignore[attr-defined]
                        "carol")
    assert proc.returncode == 3 and data is None
    assert "Not the student's fault" in proc.stdout + proc.stderr
