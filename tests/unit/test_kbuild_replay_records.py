"""kbuild replay's pure parts: reading the wrapper's records, choosing the sub-makes to replay,
writing the script, and telling two builds of a module apart (.BTF aside)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from kmodlab.labs.kbuild_replay import (
    SubMake,
    kbuild_submakes,
    parse_records,
    replay_script,
    same_module,
)

HEADERS = "/kmodlab/kernel/usr/src/linux-headers-6.12.118+deb12-cloud-arm64"
SCRIPTS = "/kmodlab/kernel/usr/src/linux-headers-6.12.118+deb12-common/scripts"


def record(folder: Path, n: int, directory: str, argv: list[str], env: dict[str, str]) -> None:
    (folder / f"{n}.pwd").write_text(directory + "\n")
    (folder / f"{n}.argv").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    (folder / f"{n}.env").write_bytes(b"".join(f"{k}={v}".encode() + b"\0"
                                               for k, v in env.items()))


def six_twelve(folder: Path) -> None:
    """What the wrapper left on arm64 6.12: the top Makefile starting itself again in the
    output folder (level 1), which starts kbuild's three scripts (level 2); one of those starts
    another (level 3)."""
    base = {"PATH": "/usr/bin:/bin", "KML_RECORD": "/kmodlab/submission/.kmodlab-submakes",
            "_": "/usr/bin/make", "SHLVL": "2", "KBUILD_EXTMOD": "/kmodlab/submission"}
    record(folder, 0, HEADERS, ["--no-print-directory", "-C", HEADERS, "-f",
                                f"{HEADERS}/Makefile", "modules"], {**base, "MAKELEVEL": "1"})
    record(folder, 1, HEADERS, ["-f", f"{SCRIPTS}/Makefile.build", "obj=/kmodlab/submission"],
           {**base, "MAKELEVEL": "2", "KBUILD_CFLAGS": "-O2 -Wall 'quoted' $x"})
    record(folder, 2, HEADERS, ["-f", f"{SCRIPTS}/Makefile.vmlinux_o"], {**base,
                                                                         "MAKELEVEL": "3"})
    record(folder, 3, HEADERS, ["-f", f"{SCRIPTS}/Makefile.modpost"],
           {**base, "MAKELEVEL": "2"})
    record(folder, 4, HEADERS, ["-f", f"{SCRIPTS}/Makefile.modfinal"],
           {**base, "MAKELEVEL": "2"})


def test_the_records_are_read_in_order_without_the_recorders_variables(tmp_path: Path) -> None:
    six_twelve(tmp_path)
    subs = parse_records(tmp_path)
    assert [s.level for s in subs] == [1, 2, 3, 2, 2]
    names = {k for s in subs for k, _ in s.env}
    assert "KML_RECORD" not in names and "_" not in names and "SHLVL" not in names
    assert subs[1].makefile == f"{SCRIPTS}/Makefile.build"
    assert subs[0].directory == HEADERS


def test_the_replay_is_kbuilds_scripts_at_their_lowest_level(tmp_path: Path) -> None:
    six_twelve(tmp_path)
    chosen = kbuild_submakes(parse_records(tmp_path))
    assert [Path(s.makefile).name for s in chosen] == [
        "Makefile.build", "Makefile.modpost", "Makefile.modfinal"]


def test_no_kbuild_script_means_no_replay() -> None:
    top = SubMake(HEADERS, ("-f", f"{HEADERS}/Makefile"), (("MAKELEVEL", "1"),))
    assert kbuild_submakes([top]) == []


def test_the_script_gives_each_sub_make_exactly_its_environment(tmp_path: Path) -> None:
    six_twelve(tmp_path)
    script = replay_script(kbuild_submakes(parse_records(tmp_path)), "arm64-6.12")
    lines = script.splitlines()
    assert lines[1] == "set -e"
    runs = [shlex.split(line) for line in lines if line.startswith("env -i ")]
    assert len(runs) == 3
    first = runs[0]
    assert first[:2] == ["env", "-i"]
    assert "KBUILD_CFLAGS=-O2 -Wall 'quoted' $x" in first     # quoting survives the shell
    make = first.index("make")
    assert first[make + 1:] == ["-f", f"{SCRIPTS}/Makefile.build", "obj=/kmodlab/submission"]
    assert all(line == f"cd {HEADERS}" for line in lines if line.startswith("cd "))


def test_a_replay_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        replay_script([], "x86_64-6.1")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host's gcc (kbuild's)")
def test_two_builds_are_the_same_module_whatever_their_btf(tmp_path: Path) -> None:
    def obj(build: str, value: int, btf: str) -> bytes:
        """m.o, built in its own folder (a file name is in the symbol table)."""
        folder = tmp_path / build
        folder.mkdir()
        (folder / "m.c").write_text(f'int x = {value};\n__attribute__((section(".BTF"))) '
                                    f'const char btf[] = "{btf}";\n')
        subprocess.run(["gcc", "-c", "m.c", "-o", "m.o"], cwd=folder, check=True)
        return (folder / "m.o").read_bytes()

    base = obj("a", 1, "first")
    assert same_module(base, obj("b", 1, "other"))          # only .BTF differs
    assert not same_module(base, obj("c", 2, "first"))      # .data differs
