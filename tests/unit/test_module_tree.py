"""A user's Kbuild tree as its author builds it (kmodlab.modules.tree): what kbuild's .cmd files
say the compiler read, when a cached build is stale, the copy fallback's links, the folder's
identity, and ``kmodlab run DIR ... -- k=v``.  The overlay build itself runs real kbuild:
tests/integration/test_build_modules.py."""

from __future__ import annotations

import os
from pathlib import Path

from kmodlab.cli import split_module_args
from kmodlab.modules import tree

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "kbuild" / ".main.o.cmd"
"""A real .cmd of a module built in /tmp/drvtree/drivers/drv for 6.1 (trimmed: its header, a
few kernel headers, the header it included from outside its folder)."""

KERNEL = "/root/.cache/kmodlab/kernels/6.1.0-57-cloud-amd64"


def test_the_deps_of_a_real_cmd_file() -> None:
    paths = list(tree._dep_paths(FIXTURE.read_text()))
    assert "/tmp/drvtree/drivers/drv/../../include/kml_h.h" in paths
    assert any(p.endswith("include/linux/module.h") and p.startswith(KERNEL) for p in paths)
    assert not any("wildcard" in p or p.startswith("$") or p == "\\" for p in paths)
    assert "/tmp/drvtree/drivers/drv/main.c" not in paths      # the source line is not a dep


def _project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """tmp/proj/{drv/, include/h.h, common/x.c} and a build folder holding a .cmd naming
    drv's main.c, include/h.h and a kernel header."""
    proj = tmp_path / "proj"
    drv, include, common = proj / "drv", proj / "include", proj / "common"
    for d in (drv, include, common):
        d.mkdir(parents=True)
    (include / "h.h").write_text("#define X 1\n")
    (common / "x.c").write_text("int x;\n")
    (drv / "main.c").write_text('#include "h.h"\n')
    kernel = tmp_path / "kernel"
    (kernel / "include").mkdir(parents=True)
    (kernel / "include" / "module.h").write_text("/* kernel */\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".main.o.cmd").write_text(
        f"cmd_x := gcc\n\nsource_{drv}/main.o := {drv}/main.c\n\n"
        f"deps_{drv}/main.o := \\\n  {kernel}/include/module.h \\\n"
        f"    $(wildcard include/config/FOO) \\\n  {drv}/../include/h.h \\\n"
        f"  {drv}/main.c \\\n\n{drv}/main.o: $(deps_{drv}/main.o)\n")
    return drv, kernel, out


def test_inputs_are_the_files_read_outside_the_folder_and_the_kernel(tmp_path: Path) -> None:
    drv, kernel, out = _project(tmp_path)
    inputs = tree.recorded_inputs(out, drv, [kernel])
    header = str((drv.parent / "include" / "h.h").resolve())
    assert list(inputs) == [header]
    assert tree.changed_inputs(inputs) == []
    (drv.parent / "include" / "h.h").write_text("#define X 2\n")
    assert tree.changed_inputs(inputs) == [header]
    (drv.parent / "include" / "h.h").unlink()
    assert tree.changed_inputs(inputs) == [header]          # vanished counts as changed


def test_the_copy_fallback_resolves_links_that_leave_the_folder(tmp_path: Path) -> None:
    drv, _kernel, _out = _project(tmp_path)
    os.symlink("../common/x.c", drv / "x.c")                 # leaves the folder
    os.symlink("main.c", drv / "alias.c")                    # stays inside
    os.symlink("../nowhere.c", drv / "gone.c")               # dangling
    (drv / "stale.o").write_bytes(b"an object built for another kernel")
    dest = tmp_path / "copy"
    tree.copy_resolving_links(drv, dest)
    assert not (dest / "x.c").is_symlink() and (dest / "x.c").read_text() == "int x;\n"
    assert (dest / "alias.c").is_symlink() and os.readlink(dest / "alias.c") == "main.c"
    assert (dest / "gone.c").is_symlink()                    # make names it as missing
    assert not (dest / "stale.o").exists()


def test_the_folder_identity_reads_through_links_and_survives_dangling_ones(
        tmp_path: Path) -> None:
    drv, _kernel, _out = _project(tmp_path)
    os.symlink("../common/x.c", drv / "x.c")
    first = tree.tree_digest(drv)
    (drv.parent / "common" / "x.c").write_text("int x = 2;\n")   # edited through the link
    second = tree.tree_digest(drv)
    assert second != first
    (drv / "main.o").write_bytes(b"product")                    # products do not count
    assert tree.tree_digest(drv) == second
    os.symlink("../nowhere.c", drv / "gone.c")
    assert tree.tree_digest(drv) != second                       # no traceback either


def test_module_arguments_after_a_double_dash() -> None:
    words, extra = split_module_args(["run", "./drv", "--arch", "arm64", "--", "quantum=4000"])
    assert words == ["run", "./drv", "--arch", "arm64"] and extra == ["quantum=4000"]
    assert split_module_args(["-v", "build", "d", "--", "a=1", "b=2"]) == (
        ["-v", "build", "d"], ["a=1", "b=2"])
    # exec keeps its own '--' (the guest command)
    assert split_module_args(["exec", "--", "ls", "-l"]) == (["exec", "--", "ls", "-l"], None)
    assert split_module_args(["run", "kmalloc"]) == (["run", "kmalloc"], None)
