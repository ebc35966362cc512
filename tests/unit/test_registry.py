"""The registry: targets, the matrix, and that arch/series facts live only in data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from kmodlab import registry
from kmodlab.errors import ConfigError
from kmodlab.kernels.kernel import Kernel
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
    with pytest.raises(ConfigError, match="unknown architecture 'mips'; known: arm64, i386, "
                       "x86_64"):
        registry.target("mips", "6.1")
    with pytest.raises(ConfigError, match="unknown kernel series '4.19'"):
        registry.target("x86_64", "4.19")
    with pytest.raises(ConfigError, match="unknown kernel flavour '64k'"):
        registry.target("x86_64", "6.1", "64k")


@pytest.mark.parametrize(("arch", "kernel", "flavour", "why"), [
    ("i386", "6.12", None, "Debian builds no i386 kernel after 6.1"),
    ("i386", "latest", None, "Debian builds no i386 kernel after 6.1"),
    ("i386", "6.1", "cloud", "flavour cloud exists only for x86_64, arm64, not i386"),
    ("x86_64", "7.2", "16k", "flavour 16k exists only for arm64"),
    ("arm64", "6.1", "16k", "flavour 16k exists only in series 6.12, 7.2: Debian builds none"),
])
def test_combinations_debian_does_not_build_are_refused_with_the_reason(
        arch: str, kernel: str, flavour: str | None, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        registry.target(arch, kernel, flavour)


def test_latest_is_the_newest_series_and_each_arch_has_its_default_flavour() -> None:
    assert registry.target("x86_64", "latest") == Target("x86_64", "7.2")
    assert registry.target("arm64", "latest", "16k").label == "arm64-7.2-16k"
    assert registry.target("i386", "5.10").flavour_name == "generic"      # no cloud on i386
    assert registry.target("i386", "6.1", "generic") == Target("i386", "6.1")
    assert registry.target("i386", "6.1", "rt").label == "i386-6.1-rt"


def test_target_spellings_round_trip() -> None:
    for t in registry.matrix():
        assert registry.parse_target(t.spec) == t
        assert str(t) == t.spec and t.label == t.spec.replace(":", "-")
    with pytest.raises(ConfigError, match="ARCH:KERNEL"):
        registry.parse_target("x86_64")


def test_matrix_is_arch_major_and_leaves_out_what_debian_does_not_build(tmp_path: Path) -> None:
    assert [t.spec for t in registry.matrix()] == [
        "x86_64:5.10", "x86_64:6.1", "x86_64:6.12", "x86_64:7.2",
        "arm64:5.10", "arm64:6.1", "arm64:6.12", "arm64:7.2", "i386:5.10", "i386:6.1"]
    assert [t.spec for t in registry.matrix(["arm64"], ["6.12"])] == ["arm64:6.12"]
    assert [t.spec for t in registry.matrix(None, None, "16k")] == ["arm64:6.12:16k",
                                                                  "arm64:7.2:16k"]


def test_a_new_series_is_one_data_entry(tmp_path: Path) -> None:
    """The diff docs/architecture.md shows: a series entry and its suites, nothing in code."""
    data = yaml.safe_load(SERIES_FILE.read_text())
    data["series"]["5.15"] = {
        "description": "a hypothetical 5.15 from bullseye",
        "suites": ["bullseye", "bullseye-security"],
        "arches": ["x86_64"],
        "abi": r"5\.15\.0-[0-9]+",
        "image": ["linux-image-{release}", "linux-image-{release}-unsigned"],
        "headers": ["linux-headers-{release}", "linux-headers-{abi}-common"],
        "kbuild": ["linux-kbuild-5.15"],
        "compiler": "gcc-10",
        "build_env": "bullseye",
    }
    data["archive"]["suites"].update({"bullseye": "debian", "bullseye-security": "debian-security"})
    path = tmp_path / "series.yaml"
    path.write_text(yaml.safe_dump(data))
    table = load_series(path)
    series = table.get_series("5.15")
    assert series.version == (5, 15) and series.compiler == "gcc-10"
    assert table.series_of_abi("5.15.0-32") is series
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


@pytest.mark.parametrize(("arch", "kernel", "why"), [
    ("i386", "6.1", "no kernel build settings for i386"),
    ("x86_64", "7.2", "series 7.2 needs its own release's"),
    ("arm64", "5.10", "series 5.10 needs its own release's"),
])
def test_kernel_builds_are_refused_where_they_were_never_made_to_work(
        arch: str, kernel: str, why: str) -> None:
    """A --config with kernel options builds from linux-source with the host's compiler; that
    is refused for an arch without build settings and for series of another release, instead
    of failing deep inside a 5-minute build."""
    with pytest.raises(ConfigError, match=why):
        registry.target(arch, kernel, None, "debug-memory")
    assert registry.target(arch, kernel, None, "slub-debug").config == "slub-debug"  # boot only


def test_a_kernel_label_names_its_flavour_as_the_target_label_does(tmp_path) -> None:
    """Run folders, reports and test ids of an rt kernel were labelled ``x86_64-7.2``, the same
    as the cloud kernel's; a flavour other than the arch's default is now in the label."""
    from kmodlab.kernels.kernel import Kernel
    from kmodlab.registry import target

    def kernel(arch: str, flavour: str) -> Kernel:
        return Kernel(arch=arch, series="7.2", flavour=flavour, release="r", package_version="v",
                      root=tmp_path, image=tmp_path, vmlinux=None, config=tmp_path,
                      system_map=tmp_path, modules_dir=tmp_path, headers_dir=tmp_path)

    assert kernel("x86_64", "rt").label == target("x86_64", "7.2", "rt").label == "x86_64-7.2-rt"
    assert kernel("x86_64", "cloud").label == target("x86_64", "7.2").label == "x86_64-7.2"
    assert kernel("i386", "generic").label == "i386-7.2"         # i386's own default flavour


def _kernel_of(series: str, boot_params: tuple[str, ...] = ()) -> Kernel:
    p = Path("/nonexistent")
    return Kernel(arch="x86_64", series=series, flavour="cloud", release="r", package_version="v",
                  root=p, image=p, vmlinux=None, config=p, system_map=p, modules_dir=p,
                  headers_dir=p, boot_params=boot_params)


def test_every_kernel_boots_with_its_series_parameters_then_its_fragments() -> None:
    for series in registry.series_names():
        own = registry.series_boot_params(series)
        assert _kernel_of(series, ("init_on_free=1",)).boot_cmdline == (*own, "init_on_free=1")
    assert registry.series_boot_params("9.9") == () and _kernel_of("9.9").boot_cmdline == ()


def test_5_10_turns_the_slub_debug_static_key_on_and_debugs_no_cache() -> None:
    """A cache created with SLAB_STORE_USER is not debugged on 5.10 (and BUGs 5.10-rt in
    __slab_free()) unless slub_debug= turned the static key on: the series boots with flags
    "-" for a list of caches no cache is named (mm/slub.c: parse_slub_debug_flags())."""
    params = [p for p in registry.series_boot_params("5.10") if p.startswith("slub_debug=")]
    assert len(params) == 1
    flags, _, caches = params[0].removeprefix("slub_debug=").partition(",")
    assert flags == "-" and caches and "kml" not in caches   # kmodlab's caches are kml_*
    assert all(not p.startswith("slub_debug=") for s in registry.series_names() if s != "5.10"
               for p in registry.series_boot_params(s))
