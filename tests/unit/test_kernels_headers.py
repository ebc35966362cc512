"""Header fixups on a tiny fake Debian tree: it must build from the cache, not from /usr/src."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kmodlab.errors import ProvisionError
from kmodlab.kernels.headers import (
    check_headers_tree,
    fix_tree,
    relativize_symlinks,
    rewrite_makefile_includes,
    run_depmod,
)

REL, ABI = "1.0-9-test", "1.0-9"


def make_tree(root: Path) -> Path:
    """The shape of linux-image + linux-headers(-common) + linux-kbuild, extracted."""
    src = root / "usr" / "src"
    arch_dir = src / f"linux-headers-{REL}"
    common = src / f"linux-headers-{ABI}-common"
    kbuild = root / "usr" / "lib" / "linux-kbuild-1.0"
    for d in (arch_dir, common, kbuild / "scripts" / "basic", kbuild / "scripts" / "mod",
              root / "lib" / "modules" / REL / "kernel"):
        d.mkdir(parents=True)
    (arch_dir / "Makefile").write_text(f"include /usr/src/linux-headers-{ABI}-common/Makefile\n")
    (common / "Makefile").write_text("hello:\n\t@echo common-makefile-read\n")
    for p in (arch_dir / ".config", arch_dir / "Module.symvers",
              kbuild / "scripts" / "basic" / "fixdep", kbuild / "scripts" / "mod" / "modpost"):
        p.write_text("")
    (arch_dir / "scripts").symlink_to("../../lib/linux-kbuild-1.0/scripts")      # Debian: relative
    mods = root / "lib" / "modules" / REL
    (mods / "build").symlink_to(f"/usr/src/linux-headers-{REL}")                # Debian: absolute
    (mods / "source").symlink_to(f"/usr/src/linux-headers-{ABI}-common")
    (mods / "elsewhere").symlink_to("/nonexistent/path")
    return arch_dir


def test_absolute_links_become_relative(tmp_path):
    root = tmp_path / "root"
    make_tree(root)
    fixes = relativize_symlinks(root)
    mods = root / "lib" / "modules" / REL
    assert {f.path.name for f in fixes} == {"build", "source"}
    assert os.readlink(mods / "build") == f"../../../usr/src/linux-headers-{REL}"
    assert (mods / "build" / "Makefile").is_file()
    assert os.readlink(mods / "elsewhere") == "/nonexistent/path"     # not ours: left alone
    assert os.readlink(root / "usr/src" / f"linux-headers-{REL}" / "scripts").startswith("../")


def test_makefile_include_is_rewritten_relative(tmp_path):
    root = tmp_path / "root"
    arch_dir = make_tree(root)
    (fix,) = rewrite_makefile_includes(arch_dir / "Makefile", root)
    assert fix.old == f"/usr/src/linux-headers-{ABI}-common/Makefile"
    text = (arch_dir / "Makefile").read_text()
    assert "/usr/src" not in text
    assert text == ("include $(dir $(lastword $(MAKEFILE_LIST)))"
                    f"../linux-headers-{ABI}-common/Makefile\n")


def test_missing_include_target_is_left_for_the_check(tmp_path):
    mk = tmp_path / "Makefile"
    mk.write_text("include /usr/src/not-there/Makefile\n")
    assert rewrite_makefile_includes(mk, tmp_path) == []
    assert mk.read_text() == "include /usr/src/not-there/Makefile\n"


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_fixed_tree_works_after_moving_it(tmp_path):
    """Built in a temp dir, renamed into the cache: relative fixups survive the move."""
    root = tmp_path / "tmp-entry" / "root"
    make_tree(root)
    fix_tree(root)
    final = tmp_path / "final-entry"
    (tmp_path / "tmp-entry").rename(final)
    root = final / "root"
    for where in (root / "usr/src" / f"linux-headers-{REL}", root / "lib/modules" / REL / "build"):
        out = subprocess.run(["make", "-s", "-C", str(where), "hello"], capture_output=True,
                             check=False,
                             text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "common-makefile-read"
    check_headers_tree(root / "usr/src" / f"linux-headers-{REL}")


def test_check_headers_tree_names_what_is_missing(tmp_path):
    root = tmp_path / "root"
    arch_dir = make_tree(root)
    with pytest.raises(ProvisionError, match="absolute /usr/src"):
        check_headers_tree(arch_dir)
    fix_tree(root)
    (arch_dir / ".config").unlink()
    with pytest.raises(ProvisionError, match=r"\.config"):
        check_headers_tree(arch_dir)


@pytest.mark.skipif(not (shutil.which("depmod") or Path("/usr/sbin/depmod").exists()),
                    reason="needs kmod's depmod")
def test_depmod_writes_modules_dep(tmp_path):
    root = tmp_path / "root"
    make_tree(root)
    modules = run_depmod(root, REL)
    assert (modules / "modules.dep").is_file()
    with pytest.raises(ProvisionError, match="lib/modules/9.9"):
        run_depmod(root, "9.9")


def test_absolute_kbuild_output_becomes_the_makefiles_own_folder(tmp_path):
    """7.2's arch headers Makefile sets KBUILD_OUTPUT=/usr/src/linux-headers-<release>; left
    absolute, kbuild said 'specified kernel directory ... does not exist' from the cache."""
    arch_dir = make_tree(tmp_path)
    makefile = arch_dir / "Makefile"
    makefile.write_text(f"KBUILD_OUTPUT=/usr/src/linux-headers-{REL}\n"
                        f"include /usr/src/linux-headers-{ABI}-common/Makefile\n")
    (arch_dir.parent / f"linux-headers-{ABI}-common" / "Makefile").write_text(
        "show:\n\t@echo out=$(KBUILD_OUTPUT)\n")
    rewrite_makefile_includes(makefile, tmp_path)
    assert "/usr/src" not in makefile.read_text()
    moved = tmp_path / "elsewhere"
    shutil.move(str(tmp_path / "usr"), str(moved))
    out = subprocess.run(["make", "-s", "-C", str(moved / "src" / arch_dir.name), "show"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"out={moved / 'src' / arch_dir.name}"
