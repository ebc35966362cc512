"""Generated CI workflows are valid YAML and carry the matrix, shards and cache."""

from __future__ import annotations

import yaml

from kmodlab.ci.hostdeps import required_packages
from kmodlab.ci.workflows import WorkflowSpec, render_workflow


def test_github_workflow_matrix_and_cache() -> None:
    path, text = render_workflow("github", WorkflowSpec(kernels=("6.1", "6.12"), shards=3))
    assert path == ".github/workflows/kmodlab.yml"
    job = yaml.safe_load(text)["jobs"]["kernel-tests"]
    assert job["strategy"]["matrix"] == {"arch": ["x86_64", "arm64"], "kernel": ["6.1", "6.12"],
                                         "shard": [1, 2, 3]}
    steps = {s.get("name", s.get("uses")): s for s in job["steps"]}
    assert steps["actions/cache@v4"]["with"]["path"] == "~/.cache/kmodlab"
    assert "--kmodlab-shard ${{ matrix.shard }}/3" in steps["Run the tests"]["run"]
    assert "--kmodlab-arch ${{ matrix.arch }}" in steps["Run the tests"]["run"]


def test_gitlab_workflow_without_shards() -> None:
    path, text = render_workflow("gitlab", WorkflowSpec(arches=("arm64",), kernels=("6.12",)))
    assert path == ".gitlab-ci.yml"
    job = yaml.safe_load(text)["kmodlab"]
    assert job["parallel"]["matrix"] == [{"ARCH": ["arm64"], "KERNEL": ["6.12"]}]
    assert not any("shard" in line for line in job["script"])


def test_host_package_list_names_the_essentials() -> None:
    packages = required_packages()
    for essential in ("qemu-system-x86", "qemu-system-arm", "gcc-12-aarch64-linux-gnu", "dwarves"):
        assert essential in packages
