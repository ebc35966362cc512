"""A wheel must carry every data folder kmodlab reads at run time."""

from __future__ import annotations

import tomllib

from kmodlab.paths import PROJECT_ROOT, data_path


def test_every_module_folder_is_packaged() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    data_files = config["tool"]["setuptools"]["data-files"]
    for folder in sorted(p for p in (PROJECT_ROOT / "modules").iterdir() if p.is_dir()):
        assert f"share/kmodlab/modules/{folder.name}" in data_files, folder
    assert "share/kmodlab/kconfig" in data_files and "share/kmodlab/images" in data_files


def test_data_path_prefers_the_checkout() -> None:
    assert data_path("modules") == PROJECT_ROOT / "modules"


def test_test_files_have_unique_basenames() -> None:
    # tests/ are not packages (helpers import siblings by name), so pytest's default import mode
    # refuses two test files with one basename in a single run ("import file mismatch").
    names = [p.name for p in (PROJECT_ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
