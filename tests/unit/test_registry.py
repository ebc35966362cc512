"""The registry: targets, the matrix, and that arch/series facts live only in data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from kmodlab import registry
from kmodlab.errors import ConfigError
from kmodlab.registry import Target
from kmodlab.registry.series import SERIES_FILE, load_series

PACKAGE = Path(registry.__file__).resolve().parents[1]
# Where per-arch and per-series facts may be written: the registry and the model's tables.
ALLOWED = ("registry/", "model/")


def test_defaults_come_from_series_yaml() -> None:
    data = yaml.safe_load(SERIES_FILE.read_text())
    default = registry.default_target()
    assert (default.arch, default.kernel) == (data["default_arch"], str(data["default_series"]))
    assert registry.default_flavour() == data["default_flavour"]
    assert registry.arch_names()[0] == data["default_arch"]
    assert set(registry.series_names()) == set(map(str, data["series"]))


def test_target_canonicalises_and_refuses_with_the_choices() -> None:
    assert registry.target("amd64", "6.12") == Target("x86_64", "6.12")
    assert registry.target("aarch64", "6.1", "cloud") == Target("arm64", "6.1")   # default flavour
    assert registry.target("arm64", "6.1", "generic").label == "arm64-6.1-generic"
    assert registry.target("x86_64", "6.1.0-56").series == "6.1"
    with pytest.raises(ConfigError, match="unknown architecture 'mips'; known: arm64, x86_64"):
        registry.target("mips", "6.1")
    with pytest.raises(ConfigError, match="unknown kernel series '4.19'"):
        registry.target("x86_64", "4.19")
    with pytest.raises(ConfigError, match="unknown kernel flavour 'rt'"):
        registry.target("x86_64", "6.1", "rt")


def test_target_spellings_round_trip() -> None:
    for t in registry.matrix():
        assert registry.parse_target(t.spec) == t
        assert str(t) == t.spec and t.label == t.spec.replace(":", "-")
    with pytest.raises(ConfigError, match="ARCH:KERNEL"):
        registry.parse_target("x86_64")


def test_matrix_is_arch_major_and_leaves_out_what_debian_does_not_build(tmp_path: Path) -> None:
    assert [t.spec for t in registry.matrix()] == [
        f"{a}:{s}" for a in registry.arch_names() for s in registry.series_names()]
    assert [t.spec for t in registry.matrix(["arm64"], ["6.12"])] == ["arm64:6.12"]


def test_a_new_series_is_one_data_entry(tmp_path: Path) -> None:
    """The diff docs/architecture.md shows: a series entry and its suites, nothing in code."""
    data = yaml.safe_load(SERIES_FILE.read_text())
    data["series"]["5.10"] = {
        "description": "Debian 11 (bullseye)'s own kernel",
        "suites": ["bullseye", "bullseye-security"],
        "arches": ["x86_64"],
        "abi": r"5\.10\.0-[0-9]+",
        "image": ["linux-image-{release}", "linux-image-{release}-unsigned"],
        "headers": ["linux-headers-{release}", "linux-headers-{abi}-common"],
        "kbuild": ["linux-kbuild-5.10"],
        "compiler": "gcc-10",
        "build_env": "bullseye",
    }
    data["archive"]["suites"].update({"bullseye": "debian", "bullseye-security": "debian-security"})
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(data))
    table = load_series(path)
    series = table.get_series("5.10")
    assert series.version == (5, 10) and series.compiler == "gcc-10"
    assert table.series_of_abi("5.10.0-32") is series
    assert "bullseye-security" in table.suites()


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_no_arch_or_series_literal_outside_the_registry_and_the_model() -> None:
    names = set(registry.arch_names()) | set(registry.series_names()) | {"amd64", "aarch64"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ALLOWED):
            continue
        for lineno, value in _string_constants(ast.parse(path.read_text())):
            if value in names:
                found.append(f"{rel}:{lineno}: {value!r}")
    assert found == [], "per-arch/per-series facts belong in kmodlab/registry/ or the model:\n" \
        + "\n".join(found)
