"""The layout: kmodlab imports from harness/kmodlab, and finds its data in a checkout or a wheel."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import kmodlab
from kmodlab.errors import ConfigError
from kmodlab.locate import CHECKOUT_ROOT, DATA_DIRS, data_dir

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_is_imported_from_harness_kmodlab() -> None:
    assert Path(kmodlab.__file__).resolve() == ROOT / "harness" / "kmodlab" / "__init__.py"
    assert CHECKOUT_ROOT == ROOT


def test_data_dirs_come_from_the_checkout() -> None:
    for name in DATA_DIRS:
        assert data_dir(name) == ROOT / name


def test_unknown_data_dir_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown data folder"):
        data_dir("secrets")


def test_setup_py_packages_exactly_the_located_folders() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert tuple(ast.literal_eval(assigned["DATA_DIRS"])) == DATA_DIRS


def test_a_wheel_carries_every_data_file(tmp_path: Path) -> None:
    # Built from a copy: setuptools builds in-tree and would leave build/ in the checkout.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for name in ("harness", *DATA_DIRS):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, capture_output=True, timeout=300)
    names = set(zipfile.ZipFile(next(wheels.glob("kmodlab-*.whl"))).namelist())
    for folder in DATA_DIRS:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith("."):
                assert f"kmodlab/_data/{path.relative_to(ROOT)}" in names, path
    assert "kmodlab/registry/series.yaml" in names
    assert "kmodlab/registry/arches/x86_64.yaml" in names
    assert "kmodlab/host-packages.txt" in names


def test_test_files_have_unique_basenames() -> None:
    # tests/ are not packages (helpers import siblings by name), so pytest's default import mode
    # refuses two test files with one basename in a single run ("import file mismatch").
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
