"""Your own module tree as you ship it (kmodlab.modules.tree), on real kbuild and a real guest:
several folders, a source symlinked from a sibling folder, ``-I$(PWD)/../include``, two .ko in
one tree, built and run from another working directory; the user's folder gets no file; a
header outside the folder edited means a rebuild; a missing source and a compiler error are one
clear message naming the user's own file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kmodlab.errors import BuildError
from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import build_source_dir
from kmodlab.runner import run_module

pytestmark = pytest.mark.integration

MAIN = """#include <linux/module.h>
#include "kml_tree_h.h"
int kml_tree_helper(void);
static int magic = 1;
module_param(magic, int, 0444);
static int __init kml_tree_init(void)
{
\tpr_info("kml_tree: helper %d magic %d\\n", kml_tree_helper(), magic);
\treturn 0;
}
static void __exit kml_tree_exit(void) { }
module_init(kml_tree_init);
module_exit(kml_tree_exit);
MODULE_LICENSE("GPL");
"""
HELPER = """#include <linux/kernel.h>
#include "kml_tree_h.h"
int kml_tree_helper(void) { return KML_TREE_VALUE; }
"""
SUB = """#include <linux/module.h>
static int __init kml_tree_sub_init(void) { return 0; }
static void __exit kml_tree_sub_exit(void) { }
module_init(kml_tree_sub_init);
module_exit(kml_tree_sub_exit);
MODULE_LICENSE("GPL");
"""
MAKEFILE = """ifneq ($(KERNELRELEASE),)
obj-m := kml_tree.o sub/
kml_tree-y := main.o helper.o
ccflags-y := -I$(PWD)/../../include
else
all:
\t$(MAKE) -C /lib/modules/$(shell uname -r)/build M=$(PWD) modules
endif
"""


def _tree(root: Path) -> Path:
    """root/{include/kml_tree_h.h, common/helper.c, drivers/drv/{Makefile, main.c,
    helper.c -> ../../common/helper.c, sub/{Kbuild, kml_tree_sub.c}}}"""
    drv = root / "drivers" / "drv"
    (drv / "sub").mkdir(parents=True)
    (root / "include").mkdir()
    (root / "common").mkdir()
    (root / "include" / "kml_tree_h.h").write_text("#define KML_TREE_VALUE 42\n")
    (root / "common" / "helper.c").write_text(HELPER)
    (drv / "Makefile").write_text(MAKEFILE)
    (drv / "main.c").write_text(MAIN)
    os.symlink("../../common/helper.c", drv / "helper.c")
    (drv / "sub" / "Kbuild").write_text("obj-m := kml_tree_sub.o\n")
    (drv / "sub" / "kml_tree_sub.c").write_text(SUB)
    return drv


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def booted(kernel: Kernel):
    with Guest(kernel) as g:
        yield g


def test_a_tree_as_shipped_builds_and_runs_from_anywhere(booted: Guest, kernel: Kernel,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    drv = _tree(tmp_path / "project")
    before = _files(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)                   # $(PWD) must still be the folder
    monkeypatch.setenv("PWD", str(elsewhere))
    with pytest.raises(Exception, match="several modules"):
        build_source_dir(drv, kernel)
    built = build_source_dir(drv, kernel, ["magic=7"], module_name="kml_tree", force=True)
    assert built.module_name == "kml_tree" and not built.cached
    sub = build_source_dir(drv, kernel, module_name="kml_tree_sub")
    assert sub.ko_path.is_file()
    assert _files(tmp_path / "project") == before  # nothing written into the user's tree
    run = run_module(booted, built)
    assert run.ok, run.verdict
    assert "kml_tree: helper 42 magic 7" in run.load.log

    # a header outside the folder changes: the cache knows (kbuild's record of what was read)
    assert build_source_dir(drv, kernel, module_name="kml_tree").cached
    (tmp_path / "project" / "include" / "kml_tree_h.h").write_text("#define KML_TREE_VALUE 43\n")
    again = build_source_dir(drv, kernel, module_name="kml_tree")
    assert not again.cached
    assert "kml_tree: helper 43 magic 1" in run_module(booted, again).load.log


def test_stale_objects_in_the_users_folder_are_not_linked(kernel: Kernel, tmp_path: Path) -> None:
    drv = _tree(tmp_path / "project")
    (drv / "helper.o").write_bytes(b"an object the user built for another kernel")
    built = build_source_dir(drv, kernel, module_name="kml_tree")
    assert built.ko_path.is_file()
    assert (drv / "helper.o").read_bytes().startswith(b"an object")   # still theirs


def test_a_missing_source_and_a_compiler_error_name_the_users_file(kernel: Kernel,
                                                                   tmp_path: Path) -> None:
    drv = _tree(tmp_path / "project")
    (drv / "main.c").unlink()
    with pytest.raises(BuildError) as exc:
        build_source_dir(drv, kernel, module_name="kml_tree")
    assert f"kbuild found no source for main.o: {drv / 'main.c'}" in str(exc.value)
    (drv / "main.c").write_text(MAIN.replace("return 0;", "return 0"))
    with pytest.raises(BuildError) as exc:
        build_source_dir(drv, kernel, module_name="kml_tree")
    message = str(exc.value)
    assert f"{drv / 'main.c'}:9:" in message and "error:" in message, message
    assert "9 | return 0" in message


def test_the_cli_takes_module_arguments_after_a_double_dash(kernel: Kernel, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    from kmodlab.cli import main

    drv = _tree(tmp_path / "project")
    series = f"{kernel.version[0]}.{kernel.version[1]}"
    rc = main(["run", str(drv), "--arch", kernel.arch, "--kernel", series, "--module",
               "kml_tree", "--json", "--", "magic=9"])
    out = capsys.readouterr().out
    assert rc == 0, out[-2000:]
    assert '"ok": true' in out and "magic=9" in out


FAULTS = Path(__file__).resolve().parent / "data" / "faults"


def test_a_null_dereference_and_a_warning_point_at_their_source_lines(
        kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    from kmodlab.cli import main

    series = f"{kernel.version[0]}.{kernel.version[1]}"
    target = ["--arch", kernel.arch, "--kernel", series]
    assert main(["run", str(FAULTS / "oops_load"), *target]) == 2
    err = capsys.readouterr().err
    source = FAULTS / "oops_load" / "kmlz_oops_load.c"
    line = 1 + source.read_text().splitlines().index("\t*kmlz_ptr = 42;")
    assert "in your source: kmlz_init+0x" in err and f"{source}:{line}" in err, err[-3000:]

    assert main(["run", str(FAULTS / "warn_load"), *target, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    warn = FAULTS / "warn_load" / "kmlz_warn_load.c"
    line = 1 + next(i for i, text in enumerate(warn.read_text().splitlines())
                    if "WARN_ON(" in text)
    (event,) = [e for e in data["load"]["events"] if e["kind"] == "warning"]
    assert event["source"] and event["source"][0].startswith("kmlz_init+0x")
    assert event["source"][0].endswith(f" at {warn}:{line}"), event["source"]
