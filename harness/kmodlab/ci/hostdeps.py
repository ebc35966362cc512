"""Which host packages kmodlab needs, which are missing, and installing them."""

from __future__ import annotations

import os
import shutil
import subprocess

from kmodlab.errors import KmodlabError
from kmodlab.locate import package_file

PACKAGE_LIST = package_file("host-packages.txt")


def required_packages() -> list[str]:
    lines = PACKAGE_LIST.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def missing_packages() -> list[str]:
    if shutil.which("dpkg-query") is None:
        raise KmodlabError("dpkg-query not found: kmodlab's host set-up needs Debian (or a derivative)")
    missing = []
    for pkg in required_packages():
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                             text=True, check=False)
        if "install ok installed" not in out.stdout:
            missing.append(pkg)
    return missing


def install(packages: list[str]) -> None:
    if not packages:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                   check=True, env=env)
