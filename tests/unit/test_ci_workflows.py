"""`kmodlab ci init`: generated workflows install kmodlab from a reachable source, detect KVM at
job time, key the kernel cache by the resolved release, always upload JUnit XML and console
logs, and pass real linters (actionlint's checks for GitHub, GitLab's CI schema for GitLab).

The linters (tests/ci_lint.py) come from the ``dev`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ci_lint import actionlint_text, gitlab_schema_errors

from kmodlab import cli
from kmodlab.ci.hostdeps import required_packages
from kmodlab.ci.install import parse_install, source_from_direct_url
from kmodlab.ci.workflows import WorkflowSpec, render_workflow
from kmodlab.errors import KmodlabError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
GIT = f"git+https://example.org/me/kmodlab@{COMMIT}"
PIP_ARG = f"'kmodlab @ {GIT}'"


def _spec(**kw) -> WorkflowSpec:
    return WorkflowSpec(install=PIP_ARG, install_description=f"{GIT} (git)", **kw)


def _github(**kw) -> dict:
    path, text = render_workflow("github", _spec(**kw))
    assert path == ".github/workflows/kmodlab.yml"
    return yaml.safe_load(text)["jobs"]["kernel-tests"]


def _steps(job: dict) -> list[tuple[str, dict]]:
    return [(s.get("name") or s.get("uses"), s) for s in job["steps"]]


# --------------------------------------------------------------------------- GitHub


def test_github_matrix_env_and_shards() -> None:
    job = _github(kernels=("6.1", "6.12"), shards=3)
    assert job["strategy"]["matrix"] == {
        "arch": ["x86_64", "arm64", "i386"], "kernel": ["6.1", "6.12"], "shard": [1, 2, 3],
        "exclude": [{"arch": "i386", "kernel": "6.12"}]}     # Debian builds no i386 6.12
    assert job["env"] == {"ARCH": "${{ matrix.arch }}", "KERNEL": "${{ matrix.kernel }}",
                          "FLAVOUR": "", "SHARD": "${{ matrix.shard }}/3"}
    steps = dict(_steps(job))
    assert '--kmodlab-shard "$SHARD"' in steps["Run the tests"]["run"]
    assert '--kmodlab-arch "$ARCH"' in steps["Run the tests"]["run"]
    assert "${{" not in steps["Run the tests"]["run"], "scripts read env, not expressions"


def test_github_without_shards_has_no_shard() -> None:
    job = _github(arches=("arm64",), kernels=("6.12",))
    assert "shard" not in job["strategy"]["matrix"] and "SHARD" not in job["env"]
    assert "shard" not in json.dumps(job["steps"])


def test_github_installs_the_pinned_source_and_every_host_package() -> None:
    install = dict(_steps(_github()))["Install kmodlab and its host packages"]["run"]
    assert f'bin/pip" install -q {PIP_ARG}' in install
    assert "pip install kmodlab" not in install.replace("-q ", "")
    words = install.replace("\\\n", " ").split()
    for pkg in (*required_packages(), "git", "ca-certificates"):
        assert pkg in words, pkg
    assert "kmodlab\" doctor" in install


def test_bare_package_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not published"):
        render_workflow("github", WorkflowSpec(install="kmodlab", install_description="x"))


def test_github_kvm_step_opens_dev_kvm_read_write() -> None:
    run = dict(_steps(_github()))["Check for KVM"]["run"]
    assert "[ -c /dev/kvm ] && (exec 3<>/dev/kvm)" in run   # -c first: <> would create a file
    _, text = render_workflow("github", _spec())
    assert "--privileged" in text and "99-kvm4all.rules" in text


def test_github_cache_is_keyed_by_the_release_resolved_before_it() -> None:
    steps = _steps(_github())
    names = [name for name, _ in steps]
    resolve = names.index("Resolve the kernel release")
    cache = names.index("Restore the kernel cache")
    assert resolve < cache < names.index("Fetch the kernel")
    step = steps[resolve][1]
    assert step["id"] == "kernel" and "kmodlab ci release" in step["run"]
    assert "--format env >> \"$GITHUB_OUTPUT\"" in step["run"]
    cached = steps[cache][1]
    assert cached["uses"] == "actions/cache@v4"
    assert "${{ steps.kernel.outputs.key }}" in cached["with"]["key"]
    assert "~/.cache/kmodlab/kernels" in cached["with"]["path"].split()


def test_github_uploads_junit_and_console_logs_always() -> None:
    _, upload = _steps(_github())[-1]
    assert upload["uses"] == "actions/upload-artifact@v4" and upload["if"] == "always()"
    assert upload["with"]["path"].split() == ["kmodlab-junit.xml", "~/.cache/kmodlab/runs/"]
    run = dict(_steps(_github()))["Run the tests"]["run"]
    assert "--junitxml=kmodlab-junit.xml" in run


# --------------------------------------------------------------------------- GitLab


def _gitlab(**kw) -> dict:
    path, text = render_workflow("gitlab", _spec(**kw))
    assert path == ".gitlab-ci.yml"
    return yaml.safe_load(text)["kmodlab"]


def test_gitlab_matrix_install_cache_and_artifacts() -> None:
    job = _gitlab(arches=("arm64",), kernels=("6.12",))
    assert job["parallel"]["matrix"] == [{"ARCH": "arm64", "KERNEL": ["6.12"]}]


def test_gitlab_matrix_lists_only_what_debian_builds() -> None:
    job = _gitlab(arches=("x86_64", "i386"), kernels=("6.1", "6.12"))
    assert job["parallel"]["matrix"] == [{"ARCH": "x86_64", "KERNEL": ["6.1", "6.12"]},
                                         {"ARCH": "i386", "KERNEL": ["6.1"]}]
    assert job["variables"]["FLAVOUR"] == ""      # each arch's default (i386 has no cloud)
    script = "\n".join(job["before_script"] + job["script"])
    assert "shard" not in script.lower()
    assert f'bin/pip" install -q {PIP_ARG}' in script
    assert "kmodlab ci release" in script and "(exec 3<>/dev/kvm)" in script
    assert job["cache"]["paths"][0] == ".kmodlab-cache/kernels/"
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["paths"] == ["kmodlab-junit.xml", ".kmodlab-cache/runs/"]
    assert job["artifacts"]["reports"]["junit"] == "kmodlab-junit.xml"


def test_gitlab_shards() -> None:
    job = _gitlab(shards=2)
    assert job["parallel"]["matrix"][0]["SHARD"] == [1, 2]
    assert '--kmodlab-shard "$SHARD/2"' in job["script"][-1]


# --------------------------------------------------------------------------- linters

SPECS = [{}, {"shards": 3}, {"arches": ("arm64",), "kernels": ("6.12",), "flavour": "generic"},
         {"tests": "tests/kernel tests/more"}]


@pytest.mark.parametrize("kw", SPECS, ids=["default", "shards", "one-target", "two-paths"])
def test_github_workflow_passes_actionlint(kw: dict, tmp_path: Path) -> None:
    result = actionlint_text(tmp_path, *render_workflow("github", _spec(**kw)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kw", SPECS, ids=["default", "shards", "one-target", "two-paths"])
def test_gitlab_workflow_passes_gitlabs_schema(kw: dict) -> None:
    _, text = render_workflow("gitlab", _spec(**kw))
    assert gitlab_schema_errors(text) == []


def test_the_schema_check_catches_a_broken_job() -> None:
    _, text = render_workflow("gitlab", _spec())
    broken = text.replace("    when: always", "    when: sometimes")
    assert any("sometimes" in e for e in gitlab_schema_errors(broken))


# --------------------------------------------------------------------------- install sources


def test_pinned_git_url() -> None:
    source = parse_install(GIT, Path("."))
    assert source.pip_arg == PIP_ARG and source.warning is None


def test_git_url_needs_a_revision_and_warns_on_a_branch() -> None:
    with pytest.raises(KmodlabError, match="not pinned"):
        parse_install("git+https://example.org/me/kmodlab", Path("."))
    assert "not a commit" in parse_install("git+https://example.org/me/kmodlab@main",
                                           Path(".")).warning


def test_wheel_url_and_paths_in_the_repository(tmp_path: Path) -> None:
    url = "https://example.org/kmodlab-0.1.0-py3-none-any.whl"
    assert parse_install(url, tmp_path).pip_arg == url
    with pytest.raises(KmodlabError, match="wheel"):
        parse_install("https://example.org/kmodlab.tar.gz", tmp_path)
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "kmodlab-0.1.0-py3-none-any.whl").write_bytes(b"PK")
    assert (parse_install("dist/kmodlab-0.1.0-py3-none-any.whl", tmp_path).pip_arg
            == "./dist/kmodlab-0.1.0-py3-none-any.whl")
    with pytest.raises(KmodlabError, match="does not exist"):
        parse_install("dist/kmodlab-9-py3-none-any.whl", tmp_path)
    with pytest.raises(KmodlabError, match="outside the repository"):
        parse_install("../elsewhere.whl", tmp_path)
    with pytest.raises(KmodlabError, match="not a kmodlab source tree"):
        parse_install(".", tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "kmodlab"\n')
    assert parse_install(".", tmp_path).pip_arg == "."


def test_absolute_path_is_for_self_hosted_runners(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "kmodlab"\n')
    source = parse_install(str(tmp_path), Path("."))
    assert source.pip_arg == str(tmp_path) and "self-hosted" in source.warning


def test_default_source_from_direct_url() -> None:
    vcs = {"url": "https://example.org/me/kmodlab",
           "vcs_info": {"vcs": "git", "commit_id": COMMIT, "requested_revision": "main"}}
    assert source_from_direct_url(vcs).pip_arg == f"'kmodlab @ git+{vcs['url']}@{COMMIT}'"
    wheel = {"url": "https://example.org/kmodlab-0.1.0-py3-none-any.whl", "archive_info": {}}
    assert source_from_direct_url(wheel).pip_arg == wheel["url"]
    with pytest.raises(KmodlabError, match="--install") as err:
        source_from_direct_url({"url": "file:///work/kmodlab", "dir_info": {"editable": True}})
    assert "editable checkout" in str(err.value) and "cannot reach" in str(err.value)


# --------------------------------------------------------------------------- the commands


def test_ci_init_writes_the_file_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    argv = ["ci", "init", "gitlab", "--dir", str(tmp_path), "--install", GIT,
            "--arch", "x86_64", "--kernel", "6.1"]
    assert cli.main(argv) == 0
    text = (tmp_path / ".gitlab-ci.yml").read_text()
    assert PIP_ARG in text and f"installed from {GIT}" in capsys.readouterr().out
    assert cli.main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main([*argv, "--force", "--install", "git+https://example.org/x"]) == 2
    assert "not pinned" in capsys.readouterr().err


def test_ci_init_without_install_from_an_editable_checkout_says_what_to_pass(
        tmp_path: Path, capsys, monkeypatch) -> None:
    from kmodlab.ci import install

    def editable() -> install.InstallSource:
        return source_from_direct_url({"url": f"file://{tmp_path}", "dir_info": {"editable": True}})

    monkeypatch.setattr(install, "installed_source", editable)
    assert cli.main(["ci", "init", "github", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--install git+https://" in err and "--install ." in err
    assert not (tmp_path / ".github").exists()


def test_ci_release_formats(monkeypatch, capsys) -> None:
    from kmodlab import kernels

    class Resolved:
        release, version = "6.1.0-57-cloud-amd64", "1:6.1.192-3"

    seen = []
    monkeypatch.setattr(kernels, "resolve", lambda *a: seen.append(a) or Resolved())
    assert cli.main(["ci", "release", "--arch", "x86_64", "--kernel", "6.1"]) == 0
    assert capsys.readouterr().out == "6.1.0-57-cloud-amd64\n"
    assert seen[0][:2] == ("x86_64", "6.1")
    assert cli.main(["ci", "release", "--arch", "amd64", "--kernel", "6.1", "--format", "env"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "release=6.1.0-57-cloud-amd64", "version=1:6.1.192-3",
        "key=6.1.0-57-cloud-amd64_1_6.1.192-3"]


def test_host_package_list_names_the_essentials() -> None:
    packages = required_packages()
    for essential in ("qemu-system-x86", "qemu-system-arm", "gcc-12-aarch64-linux-gnu", "dwarves"):
        assert essential in packages
