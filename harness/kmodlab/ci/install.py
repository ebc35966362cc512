"""Where a generated workflow installs kmodlab from.

kmodlab is not on a package index, so a workflow that says ``pip install kmodlab`` cannot run.
A workflow installs one exact source instead, chosen with ``kmodlab ci init --install``:

- ``git+https://host/owner/kmodlab@REV``: a pinned git URL (a commit is best: a branch moves);
- ``https://.../kmodlab-X-py3-none-any.whl``: a wheel by URL;
- ``path/to/kmodlab-X.whl`` or ``.`` (or any folder holding kmodlab's pyproject.toml): a path in
  the repository the workflow runs in (``.`` when that repository is kmodlab itself);
- an absolute path: only for self-hosted runners that have it.

Without ``--install`` the source is the one this kmodlab was installed from, read from the
distribution's ``direct_url.json`` (PEP 610): a git URL and commit, or a wheel URL.  A local
path (an editable checkout, a wheel file) is not reachable from a CI runner; the error then says
which ``--install`` to pass.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from kmodlab.errors import KmodlabError

DIST = "kmodlab"


@dataclass(frozen=True)
class InstallSource:
    """What a workflow gives ``pip install`` (one shell word, already quoted), and a note."""

    pip_arg: str
    description: str
    warning: str | None = None


def _git_source(url: str, origin: str) -> InstallSource:
    base = url[len("git+"):]
    path = urlparse(base).path
    if "@" not in path.rsplit("/", 1)[-1]:
        raise KmodlabError(
            f"{origin} {url} is not pinned: add @COMMIT (or @TAG), e.g. "
            f"{url}@<commit>, so every run installs the same kmodlab")
    rev = path.rsplit("@", 1)[1]
    warning = None
    if not (len(rev) == 40 and all(c in "0123456789abcdef" for c in rev.lower())):
        warning = (f"kmodlab is pinned to '{rev}', not a commit: a branch or a moved tag "
                   "changes what CI installs")
    return InstallSource(shlex.quote(f"{DIST} @ {url}"), f"{url} (git)", warning)


def parse_install(value: str, repo_dir: Path) -> InstallSource:
    """The source ``--install VALUE`` names, checked against the repository it is written into."""
    value = value.strip()
    if not value:
        raise KmodlabError("--install needs a value: git+URL@REV, a wheel path or URL, or '.'")
    if value.startswith("git+"):
        return _git_source(value, "--install")
    if value.startswith(("https://", "http://")):
        if not urlparse(value).path.endswith(".whl"):
            raise KmodlabError(f"--install {value}: a URL must name a wheel (.whl) or be a "
                               "git+https://...@REV URL")
        return InstallSource(shlex.quote(value), f"{value} (wheel)")
    path = Path(value)
    if path.is_absolute():
        if not path.exists():
            raise KmodlabError(f"--install {value}: no such file or folder")
        _check_kmodlab_path(path, value)
        return InstallSource(shlex.quote(str(path)), f"{path} (a path on the runner)",
                             f"--install {value} is an absolute path: only a runner that has "
                             "it (a self-hosted one) can install from it")
    repo = repo_dir.resolve()
    full = (repo / path).resolve()
    if not full.is_relative_to(repo):
        raise KmodlabError(f"--install {value} is outside the repository {repo}: a runner has only "
                           "the checkout; commit the wheel into the repository, or use a git URL")
    if not full.exists():
        raise KmodlabError(f"--install {value}: {full} does not exist (paths are relative to the "
                           f"repository root {repo})")
    _check_kmodlab_path(full, value)
    rel = full.relative_to(repo).as_posix()
    arg = "." if rel == "." else f"./{rel}"
    return InstallSource(shlex.quote(arg), f"{arg} in this repository")


def _check_kmodlab_path(path: Path, value: str) -> None:
    if path.is_file():
        if not (path.suffix == ".whl" and path.name.startswith(f"{DIST}-")):
            raise KmodlabError(f"--install {value}: a file must be a kmodlab wheel "
                               f"({DIST}-VERSION-...whl)")
        return
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file() or f'name = "{DIST}"' not in pyproject.read_text():
        raise KmodlabError(f"--install {value}: {path} is not a kmodlab source tree (no "
                           f"pyproject.toml naming {DIST})")


def installed_source() -> InstallSource:
    """The exact source this kmodlab was installed from, when a CI runner can reach it."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise KmodlabError(_need_install("kmodlab is not installed as a distribution here"))
    raw = dist.read_text("direct_url.json")
    if raw is None:
        raise KmodlabError(_need_install(
            f"kmodlab {dist.version} was installed from a package index, which a runner may not "
            "reach (kmodlab is not published)"))
    return source_from_direct_url(json.loads(raw))


def source_from_direct_url(info: dict) -> InstallSource:
    """An InstallSource from PEP 610 ``direct_url.json`` data."""
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info")
    if vcs is not None:
        if vcs.get("vcs") != "git" or not vcs.get("commit_id"):
            raise KmodlabError(_need_install(f"kmodlab was installed from {url} "
                                             f"({vcs.get('vcs')}), not a git commit"))
        return _git_source(f"git+{url}@{vcs['commit_id']}", "kmodlab's own source")
    if url.startswith("file://"):
        local = Path(unquote(urlparse(url).path))
        editable = bool(info.get("dir_info", {}).get("editable"))
        what = "an editable checkout" if editable else "a local file or folder"
        raise KmodlabError(_need_install(
            f"kmodlab here is installed from {local} ({what}), which a CI runner cannot reach",
            suggestion=_git_suggestion(local)))
    if url.startswith(("https://", "http://")) and url.endswith(".whl"):
        return InstallSource(shlex.quote(url), f"{url} (wheel)")
    raise KmodlabError(_need_install(f"kmodlab was installed from {url or 'an unknown place'}"))


def _git_suggestion(local: Path) -> str | None:
    """``git+ORIGIN@HEAD`` when ``local`` is a git checkout with a remote."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(local), *args], capture_output=True, text=True,
                             check=False, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        remote, head = git("remote", "get-url", "origin"), git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None
    if not (remote and head):
        return None
    if remote.startswith("git@") and ":" in remote:          # git@host:owner/repo.git
        host, path = remote[4:].split(":", 1)
        remote = f"https://{host}/{path}"
    return f"git+{remote}@{head}  (once that commit is pushed)"


def _need_install(why: str, suggestion: str | None = None) -> str:
    lines = [f"{why}; say where CI installs kmodlab from with --install:",
             "  --install git+https://HOST/OWNER/kmodlab@COMMIT   a pinned git URL",
             ("  --install path/to/kmodlab-VERSION-py3-none-any.whl  a wheel in this repository "
              "(or an https:// URL of one)"),
             "  --install .                                        this repository is kmodlab"]
    if suggestion:
        lines.append(f"  for example: --install {suggestion}")
    return "\n".join(lines)
