"""The `kmodlab ci init` files run as generated.

In a fresh sample repository (a tiny module and a pytest test using the kmodlab plugin) this
generates both files with ``--install`` pointing at this checkout, lints them (actionlint's
checks and shellcheck for GitHub, GitLab's schema for GitLab) and then runs the GitHub job's
``run:`` steps with bash, in order, in the sample repository, with the job's ``env:`` and what a
runner provides (``RUNNER_TEMP``, ``GITHUB_OUTPUT``/``GITHUB_PATH``/``GITHUB_ENV``/
``GITHUB_STEP_SUMMARY`` files, honoured between steps as a runner does).

Skipped, because they are GitHub actions rather than shell: ``actions/checkout`` (the sample
repository is the working directory), ``actions/cache`` (the machine's kmodlab cache stands for
the restored one; the key it would use is checked to carry the resolved release) and
``actions/upload-artifact`` (the paths it would upload are checked to exist).

The GitLab job runs too: ``before_script`` then ``script`` in one bash session in the sample
repository, as GitLab's shell does, with the job's ``variables`` and GitLab's own
(``CI_PROJECT_DIR``, the matrix values).  GitLab's cache is a folder in the project, so the
restored cache is simulated by hard-linking this machine's kernels, guest packages and images
into it, plus a stale kernel release the job must drop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from ci_lint import actionlint, gitlab_schema_errors

from kmodlab.kernels.kernel import Kernel
from kmodlab.kernels.provisioning import _pin_path
from kmodlab.locate import CHECKOUT_ROOT
from kmodlab.paths import cache_dir

pytestmark = pytest.mark.kmodlab(arch="x86_64", kernel="6.1")

MODULE_C = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/slab.h>

static void *buf;

static int __init hello_init(void)
{
	buf = kmalloc(160, GFP_KERNEL);
	pr_info("hello: 160 bytes at %p\\n", buf);
	return buf ? 0 : -ENOMEM;
}

static void __exit hello_exit(void)
{
	kfree(buf);
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
"""

TEST_PY = """\
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent / "hello"


def test_hello_loads_and_unloads(kmodule):
    module = kmodule(str(MODULE))
    load = module.load()
    assert load.command.ok, load.command.output
    assert module.unload().command.ok
"""


def _sample_repo(root: Path) -> Path:
    repo = root / "sample"
    (repo / "hello").mkdir(parents=True)
    (repo / "hello" / "hello.c").write_text(MODULE_C)
    (repo / "hello" / "Makefile").write_text("obj-m := hello.o\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_hello.py").write_text(TEST_PY)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def _expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """``${{ a.b.c }}`` from ``context`` (matrix, steps.ID.outputs); anything else is an error."""
    def one(match: re.Match) -> str:
        parts = match.group(1).strip().split(".")
        if parts[0] == "matrix":
            return context["matrix"][parts[1]]
        if parts[0] == "steps" and parts[2] == "outputs":
            return context["steps"][parts[1]][parts[3]]
        raise AssertionError(f"the test cannot evaluate ${{{{ {match.group(1)} }}}}")
    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def _read_kv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _job_env(tmp_path: Path) -> dict[str, str]:
    """The machine's environment without this checkout's venv: kmodlab must come from the job.
    KMODLAB_CACHE stays: it stands for the runner's default cache (a GitLab job sets its own)."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")
           and not k.startswith(("PYTEST_", "GITHUB_", "CI_"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    return env


def test_generated_github_workflow_runs_here(kernel: Kernel, tmp_path: Path) -> None:
    repo = _sample_repo(tmp_path)
    init = [sys.executable, "-m", "kmodlab.cli", "ci", "init"]
    target = ["--arch", kernel.arch, "--kernel", kernel.series, "--install", str(CHECKOUT_ROOT)]
    for system in ("github", "gitlab"):
        done = subprocess.run([*init, system, "--dir", str(repo), *target], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "self-hosted" in done.stderr      # an absolute path is said to be one
    workflow = repo / ".github" / "workflows" / "kmodlab.yml"

    lint = actionlint(workflow)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert gitlab_schema_errors((repo / ".gitlab-ci.yml").read_text()) == []

    job = yaml.safe_load(workflow.read_text())["jobs"]["kernel-tests"]
    matrix = {k: str(v[0]) for k, v in job["strategy"]["matrix"].items()}
    assert matrix == {"arch": kernel.arch, "kernel": kernel.series}
    context: dict = {"matrix": matrix, "steps": {}}
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    summary = runner_temp / "step-summary.md"
    env = _job_env(tmp_path)
    env.update({"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(repo),
                "RUNNER_TEMP": str(runner_temp), "GITHUB_STEP_SUMMARY": str(summary)})
    env.update({k: _expand(str(v), context) for k, v in job["env"].items()})

    ran, skipped, log = [], [], []
    started = time.time()
    for index, step in enumerate(job["steps"]):
        name = step.get("name") or step["uses"]
        if "uses" in step:
            with_ = {k: _expand(str(v), context) for k, v in step.get("with", {}).items()}
            skipped.append((name, step["uses"], with_))
            continue
        files = {key: runner_temp / f"{key.lower()}-{index}" for key in
                 ("GITHUB_OUTPUT", "GITHUB_PATH", "GITHUB_ENV")}
        for path in files.values():
            path.touch()
        script = runner_temp / f"step-{index}.sh"
        script.write_text(_expand(step["run"], context))
        done = subprocess.run(["bash", "-e", str(script)], cwd=repo, capture_output=True,
                              text=True, env={**env, **{k: str(v) for k, v in files.items()}},
                              timeout=900, stdin=subprocess.DEVNULL, check=False)
        log.append(f"--- step {name!r}: exit {done.returncode}\n{done.stdout[-3000:]}"
                   f"{done.stderr[-3000:]}")
        assert done.returncode == 0, "\n".join(log)
        ran.append(name)
        if "id" in step:
            context["steps"][step["id"]] = _read_kv(files["GITHUB_OUTPUT"])
        for line in reversed(files["GITHUB_PATH"].read_text().splitlines()):
            env["PATH"] = f"{line}{os.pathsep}{env['PATH']}"
        env.update(_read_kv(files["GITHUB_ENV"]))
    print("\n".join(log))
    print("ran:", ran)
    print("skipped (GitHub actions, not shell):", [(n, uses) for n, uses, _ in skipped])

    assert ran == ["Install kmodlab and its host packages", "Check for KVM",
                   "Resolve the kernel release", "Fetch the kernel", "Run the tests"]
    # kmodlab came from the job's own venv, built from this checkout, not from the checkout.
    venv = runner_temp / "kmodlab-venv"
    where = subprocess.run([venv / "bin" / "python", "-c", "import kmodlab; print(kmodlab.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout
    assert "KVM" in summary.read_text()

    # The cache key the skipped cache step would use: the release the job resolved.
    release = context["steps"]["kernel"]["release"]
    assert release == kernel.release
    uses = {n: (u, w) for n, u, w in skipped}
    assert uses["Restore the kernel cache"][1]["key"] == (
        f"kmodlab-{kernel.arch}-{context['steps']['kernel']['key']}-v2")
    assert release in uses["Restore the kernel cache"][1]["key"]

    # What the skipped upload step would upload exists: the JUnit XML and this job's run folder.
    junit = repo / "kmodlab-junit.xml"
    assert 'tests="1"' in junit.read_text() and 'failures="0"' in junit.read_text()
    upload = uses["Upload the JUnit XML and the console logs"][1]["path"].split()
    assert upload == ["kmodlab-junit.xml", "~/.cache/kmodlab/runs/"]
    runs = cache_dir("runs")
    assert runs == Path(os.path.expanduser(upload[1])) or "KMODLAB_CACHE" in os.environ
    fresh = [p for p in runs.iterdir() if p.is_dir() and p.stat().st_mtime >= started]
    assert any((p / "console.log").is_file() for p in fresh), textwrap.shorten(str(fresh), 300)


def test_generated_gitlab_job_runs_here(kernel: Kernel, tmp_path: Path) -> None:
    repo = _sample_repo(tmp_path)
    done = subprocess.run([sys.executable, "-m", "kmodlab.cli", "ci", "init", "gitlab", "--dir",
                           str(repo), "--arch", kernel.arch, "--kernel", kernel.series,
                           "--install", str(CHECKOUT_ROOT)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    config = (repo / ".gitlab-ci.yml").read_text()
    assert gitlab_schema_errors(config) == []
    job = yaml.safe_load(config)["kmodlab"]
    [matrix] = job["parallel"]["matrix"]
    assert matrix == {"ARCH": kernel.arch, "KERNEL": [kernel.series]}   # one entry per arch

    # GitLab restores its cache into the project before the job: this machine's entries, plus
    # a release of the same series that is no longer the newest (the job must drop it).
    cache = repo / ".kmodlab-cache"
    for kind in ("kernels", "guest-packages", "images"):
        (cache / kind).mkdir(parents=True)
    shutil.copytree(cache_dir("kernels") / kernel.release, cache / "kernels" / kernel.release,
                    symlinks=True, copy_function=os.link)
    stale = cache / "kernels" / f"{kernel.series}.0-1-{kernel.flavour}-{kernel.arch}"
    stale.mkdir()
    shutil.copytree(cache_dir("guest-packages"), cache / "guest-packages", symlinks=True,
                    copy_function=os.link, dirs_exist_ok=True)
    for image in cache_dir("images").glob(f"{kernel.release}-*"):
        shutil.copytree(image, cache / "images" / image.name, symlinks=True,
                        copy_function=os.link)
    assert job["cache"]["paths"] == [
        ".kmodlab-cache/kernels/", ".kmodlab-cache/guest-packages/", ".kmodlab-cache/images/"]

    # One bash session, as GitLab's shell executor runs before_script and script; variables
    # are exported first, in order, so "$CI_PROJECT_DIR/..." expands as GitLab expands it.
    env = _job_env(tmp_path)
    env.update({"CI": "true", "GITLAB_CI": "true", "CI_PROJECT_DIR": str(repo),
                "ARCH": kernel.arch, "KERNEL": kernel.series})
    lines = ["set -e"]
    lines += [f"export {name}={_shell_value(value)}" for name, value in job["variables"].items()]
    lines += [*job["before_script"], *job["script"]]
    script = tmp_path / "gitlab-job.sh"
    script.write_text("\n".join(lines) + "\n")
    started = time.time()
    done = subprocess.run(["bash", str(script)], cwd=repo, capture_output=True, text=True,
                          env=env, timeout=1800, stdin=subprocess.DEVNULL, check=False)
    log = done.stdout[-6000:] + done.stderr[-6000:]
    assert done.returncode == 0, log
    print(log)

    # The job resolves the series with its own apt lists.  Lists missing a suite (a mirror
    # mid-sync) never take it below the cached release (kmodlab.kernels.provisioning); only
    # when this session's own lists were the partial ones may the job find a newer release.
    used = re.search(r"^kernel release (\S+)$", done.stdout, re.MULTILINE)
    assert used, log
    if used[1] != kernel.release:
        assert _resolved_from_partial_lists(kernel), (used[1], kernel.release, log)
    assert not stale.exists(), log                       # the stale release was dropped
    assert (cache / "kernels" / used[1]).is_dir()
    # kmodlab came from the job's venv, and the job used the project's cache, not the machine's.
    venv = Path(job["variables"]["KMODLAB_VENV"].replace("$CI_PROJECT_DIR", str(repo)))
    where = subprocess.run([venv / "bin" / "python", "-c", "import kmodlab; print(kmodlab.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout
    junit = repo / "kmodlab-junit.xml"
    assert 'tests="1"' in junit.read_text() and 'failures="0"' in junit.read_text()
    # The artifacts: the JUnit XML and the job's run folders, inside the project's cache.
    assert job["artifacts"]["paths"] == ["kmodlab-junit.xml", ".kmodlab-cache/runs/"]
    fresh = [p for p in (cache / "runs").iterdir() if p.is_dir() and p.stat().st_mtime >= started]
    assert any((p / "console.log").is_file() for p in fresh), textwrap.shorten(str(fresh), 300)


def _resolved_from_partial_lists(kernel: Kernel) -> bool:
    """Whether this machine's pin of the series came from lists that missed a suite."""
    pin = _pin_path(kernel.arch, kernel.series, kernel.flavour)
    return pin.is_file() and bool(json.loads(pin.read_text()).get("partial"))


def _shell_value(value: object) -> str:
    """A GitLab variable's value as a double-quoted bash word: ``$VARS`` still expand."""
    text = str(value)
    assert '"' not in text and "`" not in text and "\\" not in text, text
    return f'"{text}"'
