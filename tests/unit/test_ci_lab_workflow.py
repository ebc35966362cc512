"""`kmodlab ci init github|gitlab --lab LAB --shards N`: N grading jobs, each running
`kmodlab lab grade ... --shard I/N` on its own I and uploading its folder, then one merge job
that needs them all, runs `kmodlab lab merge` on every shard and publishes the class report.

The files are read with yaml.safe_load and checked by the same linters as the test workflows
(tests/ci_lint.py: actionlint for GitHub, GitLab's CI schema).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from ci_lint import actionlint_text, gitlab_schema_errors

from kmodlab import cli, registry
from kmodlab.ci.workflows import LabWorkflowSpec, render_lab_workflow
from kmodlab.labs.lab import labs_dir

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GIT = f"git+https://example.org/me/kmodlab@{COMMIT}"
PIP_ARG = f"'kmodlab @ {GIT}'"


def _spec(**kw: object) -> LabWorkflowSpec:
    values: dict = {"lab": "kmalloc_waste", "targets": ("x86_64:6.1",), **kw}
    return LabWorkflowSpec(install=PIP_ARG, install_description=f"{GIT} (git)", **values)


def _github(**kw: object) -> dict:
    path, text = render_lab_workflow("github", _spec(**kw))
    assert path == ".github/workflows/kmodlab-grade.yml"
    return yaml.safe_load(text)


def _gitlab(**kw: object) -> dict:
    path, text = render_lab_workflow("gitlab", _spec(**kw))
    assert path == ".gitlab-ci.yml"
    return yaml.safe_load(text)


def _step(job: dict, name: str) -> dict:
    return next(s for s in job["steps"] if s.get("name") == name)


# --------------------------------------------------------------------------- GitHub


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_github_grades_n_shards_and_merges_them(shards: int) -> None:
    jobs = _github(shards=shards)["jobs"]
    assert set(jobs) == {"grade", "merge"}
    grade, merge = jobs["grade"], jobs["merge"]
    assert grade["strategy"]["matrix"] == {"shard": list(range(1, shards + 1))}
    assert grade["strategy"]["fail-fast"] is False
    assert grade["env"] == {"LAB": "kmalloc_waste", "SUBMISSIONS": "submissions",
                            "SHARD": f"${{{{ matrix.shard }}}}/{shards}"}
    # what each matrix entry passes to --shard: I/N for every I, each once
    passed = [grade["env"]["SHARD"].replace("${{ matrix.shard }}", str(i))
              for i in grade["strategy"]["matrix"]["shard"]]
    assert [registry.parse_shard(s) for s in passed] == [(i, shards) for i in range(1, shards + 1)]
    run = _step(grade, "Grade this shard")["run"]
    assert run.startswith('kmodlab lab grade "$LAB" "$SUBMISSIONS" --out kmodlab-shard ')
    assert '--shard "$SHARD"' in run and "${{" not in run, "scripts read env, not expressions"
    upload = _step(grade, "Upload this shard")
    assert upload["if"] == "always()" and upload["uses"] == "actions/upload-artifact@v4"
    assert upload["with"]["name"] == "kmodlab-shard-${{ matrix.shard }}"
    assert upload["with"]["path"] == "kmodlab-shard/"

    assert merge["needs"] == "grade"
    assert "!cancelled()" in merge["if"], "a failed shard still gets its merge (which names it)"
    download = _step(merge, "Download the shards")
    assert download["uses"] == "actions/download-artifact@v4"
    assert download["with"] == {"pattern": "kmodlab-shard-*", "path": "kmodlab-shards"}
    assert _step(merge, "Merge the shards")["run"] == (
        'kmodlab lab merge "$LAB" kmodlab-shards/kmodlab-shard-* --out kmodlab-report')
    assert merge["env"] == {"LAB": "kmalloc_waste"}
    report = _step(merge, "Upload the class report")
    assert report["with"]["name"] == "kmodlab-class-report"
    assert report["with"]["path"] == "kmodlab-report/"
    for job in (grade, merge):
        install = _step(job, "Install kmodlab and its host packages")["run"]
        assert f'bin/pip" install -q {PIP_ARG}' in install


def test_github_keys_the_kernel_cache_by_every_target_release() -> None:
    grade = _github(targets=("x86_64:6.1", "i386:6.1+debug-memory"))["jobs"]["grade"]
    names = [s.get("name") for s in grade["steps"]]
    assert names.index("Resolve the kernel releases") < names.index("Restore the kernel cache") \
        < names.index("Grade this shard")
    run = _step(grade, "Resolve the kernel releases")["run"]
    assert "kmodlab ci release --arch x86_64 --kernel 6.1 --format env" in run
    assert "kmodlab ci release --arch i386 --kernel 6.1 --config debug-memory --format env" in run
    assert '>> "$GITHUB_OUTPUT"' in run
    cache = _step(grade, "Restore the kernel cache")
    assert "${{ steps.kernels.outputs.key }}" in cache["with"]["key"]


def test_github_passes_the_submissions_folder_and_grade_options() -> None:
    grade = _github(submissions="hand-ins/2025", grade_options="--arch x86_64",
                    lab="labs/my lab")["jobs"]["grade"]
    assert grade["env"]["SUBMISSIONS"] == "hand-ins/2025"
    assert grade["env"]["LAB"] == "labs/my lab"
    assert _step(grade, "Grade this shard")["run"].endswith("--no-progress --arch x86_64")


# --------------------------------------------------------------------------- GitLab


@pytest.mark.parametrize("shards", [1, 3])
def test_gitlab_grades_n_shards_and_merges_them(shards: int) -> None:
    data = _gitlab(shards=shards)
    assert data["stages"] == ["grade", "merge"]
    assert data["variables"]["LAB"] == "kmalloc_waste"
    assert data["variables"]["SUBMISSIONS"] == "submissions"
    grade, merge = data["kmodlab-grade"], data["kmodlab-merge"]
    assert grade["stage"] == "grade" and merge["stage"] == "merge"
    assert grade.get("parallel", 1) == shards
    command = grade["script"][-1]
    assert command.startswith('kmodlab lab grade "$LAB" "$SUBMISSIONS" --out "kmodlab-shards/')
    # GitLab numbers parallel jobs CI_NODE_INDEX=1..N; without parallel there is one shard
    index = "$CI_NODE_INDEX" if shards > 1 else "1"
    assert f'--shard "{index}/{shards}"' in command
    passed = [index.replace("$CI_NODE_INDEX", str(i)) + f"/{shards}" for i in range(1, shards + 1)]
    assert [registry.parse_shard(s) for s in passed] == [(i, shards) for i in range(1, shards + 1)]
    assert grade["artifacts"] == {"when": "always", "name": f"kmodlab-shard-{index}",
                                  "paths": ["kmodlab-shards/"]}
    assert merge["needs"] == [{"job": "kmodlab-grade", "artifacts": True}]
    assert merge["when"] == "always"
    assert merge["script"] == ['kmodlab lab merge "$LAB" kmodlab-shards/* --out kmodlab-report']
    assert merge["artifacts"]["paths"] == ["kmodlab-report/"]
    install = "\n".join(data[".kmodlab-install"]["before_script"])
    assert f'bin/pip" install -q {PIP_ARG}' in install


# --------------------------------------------------------------------------- linters

SPECS = [{}, {"shards": 3, "targets": ("x86_64:6.1", "arm64:6.12")},
         {"shards": 2, "grade_options": "--kernel 6.12", "lab": "labs/my lab"}]


@pytest.mark.parametrize("kw", SPECS, ids=["one", "three", "options"])
def test_github_lab_workflow_passes_actionlint(kw: dict, tmp_path: Path) -> None:
    result = actionlint_text(tmp_path, *render_lab_workflow("github", _spec(**kw)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kw", SPECS, ids=["one", "three", "options"])
def test_gitlab_lab_workflow_passes_gitlabs_schema(kw: dict) -> None:
    _, text = render_lab_workflow("gitlab", _spec(**kw))
    assert gitlab_schema_errors(text) == []


def test_the_spec_refuses_what_would_break_the_file() -> None:
    with pytest.raises(ValueError, match="at least one shard"):
        _spec(shards=0)
    with pytest.raises(ValueError, match="control characters"):
        _spec(submissions="a\nb")


# --------------------------------------------------------------------------- the command


def _init(tmp_path: Path, *extra: str) -> int:
    return cli.main(["ci", "init", "github", "--dir", str(tmp_path), "--install", GIT, *extra])


def test_ci_init_lab_writes_the_grading_workflow(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _init(tmp_path, "--lab", "kmalloc_waste", "--shards", "3",
                 "--submissions", "hand-ins") == 0
    assert "kmodlab-grade.yml" in capsys.readouterr().out
    assert not (tmp_path / ".github" / "workflows" / "kmodlab.yml").exists()
    data = yaml.safe_load((tmp_path / ".github/workflows/kmodlab-grade.yml").read_text())
    grade = data["jobs"]["grade"]
    assert grade["strategy"]["matrix"]["shard"] == [1, 2, 3]
    assert grade["env"]["SUBMISSIONS"] == "hand-ins" and grade["env"]["SHARD"].endswith("/3")
    assert _init(tmp_path, "--lab", "kmalloc_waste") == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["ci", "init", "gitlab", "--dir", str(tmp_path), "--install", GIT,
                     "--lab", "kmalloc_waste", "--shards", "2"]) == 0
    assert yaml.safe_load((tmp_path / ".gitlab-ci.yml").read_text())["kmodlab-grade"][
        "parallel"] == 2


def test_ci_init_lab_from_the_repository_and_with_targets(tmp_path: Path) -> None:
    shutil.copytree(labs_dir() / "kmalloc_waste", tmp_path / "labs" / "mine")
    assert _init(tmp_path, "--lab", "labs/mine", "--arch", "x86_64", "--kernel", "6.12") == 0
    grade = yaml.safe_load((tmp_path / ".github/workflows/kmodlab-grade.yml").read_text())[
        "jobs"]["grade"]
    assert grade["env"]["LAB"] == "labs/mine"
    assert _step(grade, "Grade this shard")["run"].endswith("--arch x86_64 --kernel 6.12")
    assert "--kernel 6.12" in _step(grade, "Resolve the kernel releases")["run"]


def test_ci_init_lab_refuses_what_a_runner_cannot_reach(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    outside = tmp_path / "elsewhere"
    shutil.copytree(labs_dir() / "kmalloc_waste", outside)
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _init(repo, "--lab", str(outside)) == 2
    assert "a CI runner has only the repository" in capsys.readouterr().err
    assert _init(repo, "--lab", "no_such_lab") == 2
    assert "no lab at" in capsys.readouterr().err
    assert _init(repo, "--lab", "kmalloc_waste", "--submissions", "/srv/subs") == 2
    assert "relative to its root" in capsys.readouterr().err
    assert _init(repo, "--lab", "kmalloc_waste", "--flavour", "generic") == 2
    assert "--flavour does not apply" in capsys.readouterr().err
    assert not (repo / ".github").exists()
