"""The Gradescope autograder zip, for real: built for a lab, unpacked into a simulated
/autograder, its setup.sh run into a fresh venv (the warm-up grades the solution in a real guest),
then its run_autograder on the lab's synthetic class: each results.json is valid against
Gradescope's schema and carries the outcome the lab's tests/expected.yaml names.

What needs Gradescope itself (its Ubuntu image, its Docker limits, its UI) is listed in
docs/gradescope.md; here apt is skipped (KMODLAB_AUTOGRADER_SKIP_APT: the CI machine has the
packages) and the kernel cache is the test session's, so nothing is downloaded twice."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import gradescope as gs
from kmodlab.labs import load_lab
from kmodlab.paths import cache_root

pytestmark = pytest.mark.integration

LAB = "kmalloc_waste"
SUBMISSIONS = ("correct", "crashing", "hanging", "leaking", "malicious")
TIME_LIMIT = 300


def _unpack(archive: Path, dest: Path) -> Path:
    """As unzip does on Unix: the modes the zip records are applied."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = dest / info.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zf.read(info))
            if mode := (info.external_attr >> 16) & 0o777:
                path.chmod(mode)
    return dest


@pytest.fixture(scope="module")
def image(kernel: Kernel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The zip for ``kernel``'s target, unpacked and set up as Gradescope's image build would."""
    lab = load_lab(LAB)
    work = tmp_path_factory.mktemp("gradescope")
    archive = work / "autograder.zip"
    gs.build_autograder(lab, archive, targets=[f"{kernel.arch}:{kernel.series}"],
                        time_limit=TIME_LIMIT)
    root = work / "autograder"
    _unpack(archive, root / "source")
    env = {**os.environ, "KMODLAB_AUTOGRADER_ROOT": str(root),
           "KMODLAB_VENV": str(work / "venv"), "KMODLAB_CACHE": str(cache_root()),
           "KMODLAB_AUTOGRADER_SKIP_APT": "1"}
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, cwd=work,
                           capture_output=True, text=True, timeout=1800, check=False)
    assert setup.returncode == 0, (setup.stdout + setup.stderr)[-4000:]
    return {"lab": lab, "root": root, "env": env}


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
    proc = subprocess.run([str(root / "source" / "run_autograder")], env=image["env"],
                          cwd=root, capture_output=True, text=True, timeout=TIME_LIMIT + 60,
                          check=False)
    results = root / "results" / "results.json"
    return proc, json.loads(results.read_text()) if results.is_file() else None


@pytest.mark.parametrize("name", SUBMISSIONS)
def test_run_autograder_grades_the_synthetic_class(image: dict[str, object], name: str) -> None:
    lab = image["lab"]
    folder = lab.path / "tests" / "submissions" / name     # type: ignore[attr-defined]
    expected = yaml.safe_load((folder.parent.parent / "expected.yaml").read_text())[name]
    proc, data = _grade(image, folder, name)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert data is not None, "a student outcome always has a results.json"
    gs.validate_results(data)                       # Gradescope's documented format
    assert data["extra_data"]["outcome"] == expected["outcome"], data["output"][-2000:]
    max_points = sum(c.points for c in lab.spec.checks)                  # type: ignore[attr-defined]
    assert 0 <= data["score"] <= max_points
    if expected["outcome"] == "passed":
        assert data["score"] == max_points
    else:
        assert data["score"] < max_points
    if "output_contains" in expected:
        assert expected["output_contains"] in json.dumps(data)
    # nothing from the host in what the student sees (the malicious one includes /etc/passwd)
    assert "root:x:0:0" not in json.dumps(data)


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
