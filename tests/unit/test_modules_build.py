"""Build plumbing without a compiler: cache, error reports, warnings, bring-your-own trees.

kbuild itself is replaced by a fake that writes the .ko (or fails like gcc); the real thing is
exercised by tests/integration/test_build_modules.py.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from kmodlab.errors import BuildError, ConfigError
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import build, build_source_dir, parse_params
from kmodlab.modules.build import find_warnings, normalize_module_params

# The package exports the function build(); the implementation module has the same name.
build_impl = importlib.import_module("kmodlab.modules.build")


def fake_kernel(tmp_path: Path) -> Kernel:
    root = tmp_path / "kernel"
    root.mkdir(exist_ok=True)
    (root / "config").write_text("")
    return Kernel(arch="x86_64", series="6.1", flavour="cloud", release="6.1.0-56-cloud-amd64",
                  package_version="", root=root, image=root / "image", vmlinux=None,
                  config=root / "config", system_map=root / "System.map",
                  modules_dir=root / "modules", headers_dir=root / "headers")


class FakeKbuild:
    """Stands in for run_kbuild: records calls, writes <module>.ko or fails with gcc's format."""

    def __init__(self) -> None:
        self.calls: list[Path] = []
        self.pwds: list[Path | None] = []
        self.error: tuple[int, str] | None = None  # (line, message) to fail with
        self.warning: str | None = None

    def __call__(self, kernel: Kernel, directory: Path, *,
                 pwd: Path | None = None) -> tuple[int, str]:
        self.calls.append(directory)
        self.pwds.append(pwd)
        sources = sorted(directory.glob("*.c"))
        log = "$ make -C headers M=... modules\n  CC [M]  x.o\n"
        if self.error:
            line, msg = self.error
            return 2, log + f"{sources[0]}:{line}:5: error: {msg}\nmake[1]: *** Error 1\n"
        if self.warning:
            log += f"{sources[0]}:10:3: warning: {self.warning}\n"
        for src in sources:
            src.with_suffix(".ko").write_bytes(b"\x7fELF fake")
        return 0, log


@pytest.fixture
def kbuild(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeKbuild:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    fake = FakeKbuild()
    monkeypatch.setattr(build_impl, "run_kbuild", fake)
    # the copy path (in place through an overlay needs real kbuild: tests/integration)
    monkeypatch.setattr(build_impl.tree, "overlay_usable", lambda src: False)
    monkeypatch.setattr(build_impl, "_check_tools", lambda kernel: None)
    monkeypatch.setattr(build_impl, "compiler_tool", lambda kernel: "gcc-test")
    monkeypatch.setattr(build_impl, "compiler_version", lambda tool: "gcc-test 1.0")
    return fake


def test_build_then_cache_hit(kbuild: FakeKbuild, tmp_path: Path) -> None:
    kernel = fake_kernel(tmp_path)
    first = build("kmalloc", None, kernel)
    assert not first.cached and first.ko_path.name == "kml_kmalloc.ko"
    assert first.module_name == "kml_kmalloc" and first.family == "kmalloc"
    assert first.kernel_release == kernel.release
    assert first.source_path.is_file() and (first.build_dir / "Kbuild").is_file()
    assert first.log_path.read_text().startswith("$ make")
    assert str(tmp_path / "cache" / "builds") in str(first.build_dir)

    again = build("kmalloc", parse_params("kmalloc", []), kernel)
    assert again.cached and again.ko_path == first.ko_path
    assert len(kbuild.calls) == 1


def test_cache_key_covers_params_and_compiler(kbuild: FakeKbuild, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(tmp_path)
    a = build("pages", {"max_order": 1}, kernel)
    b = build("pages", {"max_order": 2}, kernel)
    assert a.build_dir != b.build_dir
    monkeypatch.setattr(build_impl, "compiler_version", lambda tool: "gcc-test 2.0")
    c = build("pages", {"max_order": 1}, kernel)
    assert not c.cached and c.build_dir != a.build_dir
    assert len(kbuild.calls) == 3


def test_force_rebuilds(kbuild: FakeKbuild, tmp_path: Path) -> None:
    kernel = fake_kernel(tmp_path)
    build("percpu", None, kernel)
    assert not build("percpu", None, kernel, force=True).cached
    assert len(kbuild.calls) == 2


def test_compile_error_points_into_the_rendered_source(kbuild: FakeKbuild, tmp_path: Path) -> None:
    kernel = fake_kernel(tmp_path)
    rendered_line = "\tkml_ktap_begin(&t, \"load\", KML_LOAD_PLAN);"
    probe = build_impl.render("kmalloc", None, kernel).source.splitlines()
    lineno = probe.index(rendered_line) + 1
    kbuild.error = (lineno, "'KML_LOAD_PLAN' undeclared (first use in this function)")
    with pytest.raises(BuildError) as exc:
        build("kmalloc", None, kernel)
    msg = str(exc.value)
    assert "module kml_kmalloc (family kmalloc) for 6.1.0-56-cloud-amd64 (x86_64) failed" in msg
    assert f"kml_kmalloc.c:{lineno}:5: error: 'KML_LOAD_PLAN' undeclared" in msg
    assert rendered_line.strip() in msg
    assert "rendered from template modules/kmalloc/module.c.j2 (line " in msg
    kept = Path(msg.split("rendered source kept at: ")[1].splitlines()[0])
    assert kept.is_file() and kept.read_text().splitlines()[lineno - 1] == rendered_line
    # Nothing half-built is left where the cache would trust it.
    kbuild.error = None
    assert not build("kmalloc", None, kernel).cached


def test_bad_params_fail_before_kbuild(kbuild: FakeKbuild, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sizes"):
        build("kmalloc", {"sizes": [-1]}, fake_kernel(tmp_path))
    assert kbuild.calls == []


def test_build_needs_a_kernel(kbuild: FakeKbuild) -> None:
    with pytest.raises(ConfigError, match="provision"):
        build("kmalloc", None, None)


def test_warnings_are_collected(kbuild: FakeKbuild, tmp_path: Path) -> None:
    kbuild.warning = "unused variable 'x' [-Wunused-variable]"
    built = build("vmalloc", None, fake_kernel(tmp_path))
    assert len(built.warnings) == 1 and "unused variable" in built.warnings[0]
    assert build("vmalloc", None, fake_kernel(tmp_path)).warnings == built.warnings


def test_find_warnings() -> None:
    log = """\
/b/kml_x.c:12:7: warning: unused variable 'i' [-Wunused-variable]
/b/kml_x.c:13:1: error: expected ';'
WARNING: modpost: missing MODULE_LICENSE() in /b/kml_x.o
Skipping BTF generation for /b/kml_x.ko due to unavailability of vmlinux
  CC [M]  /b/kml_x.o
"""
    assert find_warnings(log) == (
        "/b/kml_x.c:12:7: warning: unused variable 'i' [-Wunused-variable]",
        "WARNING: modpost: missing MODULE_LICENSE() in /b/kml_x.o",
    )


# --- bring your own ------------------------------------------------------------------------------

def _byo_tree(tmp_path: Path, name: str = "hello") -> Path:
    src = tmp_path / "src" / name
    src.mkdir(parents=True)
    (src / "Kbuild").write_text(f"obj-m := {name}.o\n")
    (src / f"{name}.c").write_text("/* module */\n")
    return src


def test_build_source_dir(kbuild: FakeKbuild, tmp_path: Path) -> None:
    src = _byo_tree(tmp_path)
    built = build_source_dir(src, fake_kernel(tmp_path), ["count=3", "name=x"])
    assert built.module_name == "hello" and built.family is None
    assert built.load_args == ("count=3", "name=x")
    assert built.params == {"count": "3", "name": "x"}
    assert sorted(p.name for p in src.iterdir()) == ["Kbuild", "hello.c"]  # user tree untouched
    again = build_source_dir(src, fake_kernel(tmp_path), {"count": 4})
    assert again.cached and again.load_args == ("count=4",)  # params are load-time only
    (src / "hello.c").write_text("/* changed */\n")
    assert not build_source_dir(src, fake_kernel(tmp_path)).cached


def test_build_source_dir_refuses_non_trees(kbuild: FakeKbuild, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_source_dir(tmp_path / "nope", fake_kernel(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="Kbuild nor a Makefile"):
        build_source_dir(tmp_path / "empty", fake_kernel(tmp_path))


def test_build_source_dir_failure_keeps_the_tree(kbuild: FakeKbuild, tmp_path: Path) -> None:
    src = _byo_tree(tmp_path)
    kbuild.error = (1, "expected declaration")
    with pytest.raises(BuildError, match=r"(?s)out-of-tree module in .*hello.c:1:5: error: expected declaration.*full build log"):
        build_source_dir(src, fake_kernel(tmp_path))


def test_module_params_are_checked() -> None:
    assert normalize_module_params(None) == {}
    assert normalize_module_params(["a=1", "b="]) == {"a": "1", "b": ""}
    for bad in (["novalue"], ["1x=2"], {"a": "x\ny"}):
        with pytest.raises(ConfigError):
            normalize_module_params(bad)
