"""Labs on real kernels: every sample lab verifies, every synthetic submission gets its outcome.

Runs on the plugin's kernel matrix (every arch x series by default; narrow it with
``--kmodlab-arch arm64 --kmodlab-kernel 6.12``).  Each lab folder's ``tests/expected.yaml``
says what its submissions in ``tests/submissions/`` must get.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import GradeOptions, Outcome, grade_submission, list_labs, verify_lab
from kmodlab.labs.classroom import grade_class
from kmodlab.labs.lab import load_lab
from kmodlab.labs.reports import student_markdown
from kmodlab.labs.schema import Target
from kmodlab.paths import cache_dir

pytestmark = pytest.mark.integration

LABS = list_labs()
PASSWD_LINE = Path("/etc/passwd").read_text().splitlines()[0]


def target(kernel: Kernel) -> Target:
    return Target(arch=kernel.arch, kernel=kernel.series)


def expectations(lab) -> dict[str, dict]:
    return yaml.safe_load((lab.path / "tests" / "expected.yaml").read_text())


CASES = [(lab, variant, spec) for lab in LABS for variant, spec in expectations(lab).items()]


def skip_costly_in_ci(lab, kernel: Kernel) -> None:
    """The ci tier skips a lab with its own kernel config (built from Debian's source, ~6 min,
    and swept allocation by allocation, minutes per submission); the full tier grades it (see
    tests/integration/conftest.py for the tiers)."""
    if os.environ.get("KMODLAB_TIER", "full") != "ci" or not lab.spec.config:
        return
    pytest.skip(f"ci tier: {lab.id} builds its own kernel ({', '.join(lab.spec.config)}, ~6 min) "
                "and sweeps every allocation of each submission; KMODLAB_TIER=full grades it")


def skip_off_target(lab, kernel: Kernel) -> None:
    """A lab written for other kernels (high_memory: i386 and x86_64 6.1) is not graded on this
    one; test_lab_on_its_grading_targets grades it where it runs."""
    mine = {(t.arch, t.series) for t in lab.spec.targets}
    if (kernel.arch, kernel.series) not in mine:
        pytest.skip(f"{lab.id} targets {', '.join(f'{a} {s}' for a, s in sorted(mine))}, not "
                    f"{kernel.arch} {kernel.series}")


def off_matrix(lab) -> bool:
    """The lab grades on a kernel outside the core matrix (the plugin's kernels)."""
    from kmodlab import registry

    core = {(a, s) for a in registry.core_arches() for s in registry.core_series()}
    return any((t.arch, t.series) not in core for t in lab.spec.grading_targets)


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.id)
def test_lab_is_shippable(kernel: Kernel, lab) -> None:
    skip_off_target(lab, kernel)
    skip_costly_in_ci(lab, kernel)
    rows = verify_lab(lab, [target(kernel)])
    problems = [f"{r.target} {r.student}: {p}" for r in rows for p in r.problems]
    assert not problems, "\n".join(problems)
    for row in rows:
        assert row.solution.score == lab.spec.max_points
        assert row.skeleton.outcome is Outcome.FAILED


@pytest.mark.parametrize("lab, variant, spec", CASES,
                         ids=[f"{lab.id}-{variant}" for lab, variant, _ in CASES])
def test_synthetic_submission(kernel: Kernel, lab, variant: str, spec: dict) -> None:
    skip_off_target(lab, kernel)
    if off_matrix(lab):
        pytest.skip(f"{lab.id}'s submissions are graded on its grading targets "
                    "(test_off_matrix_lab_submission)")
    skip_costly_in_ci(lab, kernel)
    check_submission(lab, variant, spec, target(kernel))


OFF_MATRIX = [(lab, variant, spec) for lab, variant, spec in CASES if off_matrix(lab)]


@pytest.mark.parametrize("lab, variant, spec", OFF_MATRIX,
                         ids=[f"{lab.id}-{variant}" for lab, variant, _ in OFF_MATRIX])
def test_off_matrix_lab_submission(lab, variant: str, spec: dict) -> None:
    """A lab whose point is a kernel outside the core matrix (high memory needs i386) is graded
    there, once per synthetic submission, whatever the matrix kernel."""
    check_submission(lab, variant, spec, lab.spec.grading_targets[0])


@pytest.mark.parametrize("lab", [lab for lab in LABS if off_matrix(lab)], ids=lambda lab: lab.id)
def test_off_matrix_lab_verifies(lab) -> None:
    rows = verify_lab(lab, lab.spec.grading_targets)
    problems = [f"{r.target} {r.student}: {p}" for r in rows for p in r.problems]
    assert not problems, "\n".join(problems)
    for row in rows:
        assert row.solution.score == lab.spec.max_points
        assert row.skeleton.outcome is Outcome.FAILED


def check_submission(lab, variant: str, spec: dict, where: Target) -> None:
    folder = lab.path / "tests" / "submissions" / variant
    options = GradeOptions(targets=[where], build_cache=cache_dir("lab-builds"))
    result = grade_submission(lab, folder, variant, options)
    report = student_markdown(lab, result) + json.dumps(result.to_dict())
    assert result.outcome.value == spec["outcome"], report
    failed = {c.name for c in result.checks if not c.passed}
    missing = [name for name in spec.get("fails", []) if name not in failed]
    assert not missing, f"expected {missing} to fail:\n{report}"
    if result.outcome is Outcome.PASSED:
        assert result.score == lab.spec.max_points
    if "output_contains" in spec:
        assert spec["output_contains"] in result.targets[0].build_output, report
    if "hang_contains" in spec:                 # who noticed the hang: a detector or a timeout
        assert spec["hang_contains"] in result.targets[0].crash, report
    if variant.startswith("malicious"):
        assert PASSWD_LINE not in report
        assert result.score == 0
    if result.outcome in (Outcome.CRASH, Outcome.HANG):
        assert result.targets[0].crash, "a crash or hang carries its excerpt"


def test_flooding_module_is_stopped_with_bounded_reads(kernel: Kernel, tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    shutil.copytree(load_lab("kmalloc_waste").path, lab_dir,
                    ignore=shutil.ignore_patterns("tests"))
    text = (lab_dir / "lab.yaml").read_text() + "limits: {console_bytes: 1048576}\n"
    (lab_dir / "lab.yaml").write_text(text)
    lab = load_lab(lab_dir)
    sub = tmp_path / "flood"
    sub.mkdir()
    source = (lab.solution_dir / "waste.c").read_text().replace(
        '\tkml_ktap_begin(&t, "load", 1);\n',
        '\tkml_ktap_begin(&t, "load", 1);\n\tfor (i = 0; i < 400000; i++)\n'
        '\t\tpr_info("flood %d: %s\\n", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");\n')
    (sub / "waste.c").write_text(source)
    result = grade_submission(lab, sub, "flooder", GradeOptions(targets=[target(kernel)]))
    assert result.outcome in (Outcome.FAILED, Outcome.HANG, Outcome.CRASH)
    assert result.score < lab.spec.max_points
    target_result = result.targets[0]
    assert any("console passed" in n for n in target_result.notes) or result.outcome is Outcome.HANG
    clean = next(c for c in result.checks if c.kind == "no_crash")
    assert not clean.passed
    if any("console passed" in n for n in target_result.notes):
        assert any("lines/s" in n for n in target_result.notes), target_result.notes
    assert len(json.dumps(result.to_dict())) < 2_000_000


def test_class_grading_resumes_and_escapes(kernel: Kernel, tmp_path: Path) -> None:
    lab = load_lab("kmalloc_waste")
    subs = tmp_path / "subs"
    names = {"correct": "alice", "leaking": "bob", "malicious": "<img src=x onerror=alert(1)>"}
    for variant, student in names.items():
        shutil.copytree(lab.path / "tests" / "submissions" / variant, subs / student)
    out = tmp_path / "reports"
    run = grade_class(lab, subs, out, targets=[target(kernel)], progress=False)
    outcomes = {r.student: r.outcome for r in run.results}
    assert outcomes == {"alice": Outcome.PASSED, "bob": Outcome.FAILED,
                        names["malicious"]: Outcome.COMPILE_ERROR}
    page = (out / "class.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x" in page
    for student_dir in (out / "students").iterdir():
        results = json.loads((student_dir / "results.json").read_text())
        assert {"score", "tests"} <= set(results)
    again = grade_class(lab, subs, out, targets=[target(kernel)], progress=False)
    assert sorted(again.reused) == sorted(names.values()) and not again.graded


def test_harness_errors_are_retried_and_never_charged(kernel: Kernel, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from kmodlab.errors import BootTimeout
    from kmodlab.guest import Guest

    lab = load_lab("kmalloc_waste")
    real_start = Guest.start
    calls = {"n": 0}

    def flaky_start(self):
        calls["n"] += 1
        if calls["n"] == 1:
            raise BootTimeout("simulated: the guest did not boot", state="starting")
        return real_start(self)

    monkeypatch.setattr(Guest, "start", flaky_start)
    options = GradeOptions(targets=[target(kernel)])
    result = grade_submission(lab, lab.solution_dir, "retry", options)
    assert result.outcome is Outcome.PASSED and result.attempts == 2

    def broken_start(self):
        raise BootTimeout("simulated: the guest did not boot", state="starting")

    monkeypatch.setattr(Guest, "start", broken_start)
    result = grade_submission(lab, lab.solution_dir, "broken", options)
    assert result.outcome is Outcome.HARNESS_ERROR and result.score is None
    assert "not charged" in student_markdown(lab, result)


def test_ktap_is_found_however_much_the_module_prints_inside_it(kernel: Kernel,
                                                                tmp_path: Path) -> None:
    """A correct solution that prints 3000 long lines between its KTAP header and its result
    (~500 KB, twice the lab's 256 KiB dmesg_bytes): full marks.  The old read kept the last
    256 KiB of the phase, without the KTAP header, and the KTAP checks failed."""
    lab = load_lab("kmalloc_waste")
    sub = tmp_path / "chatty"
    sub.mkdir()
    source = (lab.solution_dir / "waste.c").read_text().replace(
        '\tkml_ktap_begin(&t, "load", 1);\n',
        '\tkml_ktap_begin(&t, "load", 1);\n\tfor (i = 0; i < 3000; i++)\n'
        '\t\tpr_info("chatty %d: %s\\n", i, "' + "y" * 140 + '");\n')
    (sub / "waste.c").write_text(source)
    result = grade_submission(lab, sub, "chatty", GradeOptions(targets=[target(kernel)]))
    report = student_markdown(lab, result)
    assert result.outcome is Outcome.PASSED, report
    assert result.score == lab.spec.max_points, report


def test_a_crash_points_the_student_at_their_source_line(kernel: Kernel) -> None:
    """The report names the line of the student's own file (its name only: nothing of the
    build folder or the host's paths)."""
    lab = load_lab("kmalloc_waste")
    folder = lab.path / "tests" / "submissions" / "crashing"
    options = GradeOptions(targets=[target(kernel)], build_cache=cache_dir("lab-builds"))
    result = grade_submission(lab, folder, "crashing-lines", options)
    assert result.outcome is Outcome.CRASH
    source = (folder / "waste.c").read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(source) if "objs[allocated] = 1" in text)
    observed = "\n".join(c.observed for c in result.checks if c.kind == "no_crash")
    assert "in your source: " in observed and f" at waste.c:{line}" in observed, observed
    report = student_markdown(lab, result)
    assert f"waste.c:{line}" in report
    assert "/root/" not in observed and "linux-headers" not in observed
