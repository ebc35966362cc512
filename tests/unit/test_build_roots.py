"""Roots of other Debian releases for kbuild: what goes in, what is trusted, what is rebuilt."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kmodlab.kernels import build_root as br
from kmodlab.kernels.kernel import Kernel
from kmodlab.registry.series import load_series


def test_each_release_root_holds_the_series_compiler_and_cross_toolchains() -> None:
    table = load_series()
    sid = br.root_packages(table.series["7.2"], table)
    assert {"gcc-16", "make", "libelf1t64", "libssl3t64", "pahole"} <= set(sid)
    # 7.2 has arm64: its cross compiler of the same version, from the arch profile
    assert {"gcc-16-aarch64-linux-gnu", "binutils-aarch64-linux-gnu"} <= set(sid)
    bullseye = br.root_packages(table.series["5.10"], table)
    assert {"gcc-10", "libelf1", "libssl1.1", "gcc-10-aarch64-linux-gnu"} <= set(bullseye)
    assert not any("gcc-12" in p or "gcc-16" in p for p in bullseye)


def test_only_series_of_another_release_need_a_root() -> None:
    assert br.needs_root("7.2") and br.needs_root("5.10")
    assert not br.needs_root("6.1") and not br.needs_root("6.12")
    assert not br.needs_root("custom")


def test_mmdebstrap_uses_the_registry_archive_never_the_hosts_sources(tmp_path: Path) -> None:
    table = load_series()
    sid = table.build_envs["sid"]
    argv = br.mmdebstrap_argv(sid, ("make", "gcc-16"), table, tmp_path)
    assert argv[0] == "mmdebstrap" and "--variant=essential" in argv
    assert argv[-3:] == ["sid", str(tmp_path), "http://deb.debian.org/debian"]
    assert f"--keyring={table.archive.keyring}" in argv
    assert "--include=make,gcc-16" in argv
    assert not any("/etc/apt" in a for a in argv)
    # unstable's index may be past Valid-Until here; bullseye's is checked as usual
    assert any("Check-Valid-Until" in a for a in argv)
    bullseye = br.mmdebstrap_argv(table.build_envs["bullseye"], ("make",), table, tmp_path)
    assert not any("Check-Valid-Until" in a for a in bullseye)


def _sealed(path: Path, tools: list[str]) -> None:
    (path / "usr" / "bin").mkdir(parents=True)
    for tool in tools:
        (path / "usr" / "bin" / tool).write_text("")
    (path / br.MARKER).write_text(json.dumps({
        "format": br.FORMAT, "env": "sid", "suite": "sid", "packages": ["make", "gcc-16"],
        "versions": {"gcc-16": "16.2.0-4"}, "tools": ["make", "gcc-16"]}))


def test_a_sealed_root_is_trusted_and_names_its_compiler_version(tmp_path: Path) -> None:
    _sealed(tmp_path, ["make", "gcc-16"])
    root = br.load_root(tmp_path)
    assert root is not None and root.has("gcc-16")
    assert root.version_text("gcc-16") == "gcc-16 16.2.0-4 (sid root)"


@pytest.mark.parametrize("damage", ["no marker", "garbled marker", "tool missing",
                                    "old format"])
def test_a_damaged_root_is_not_trusted(tmp_path: Path, damage: str) -> None:
    """An interrupted mmdebstrap leaves no marker; a root whose compiler vanished is rebuilt."""
    _sealed(tmp_path, ["make", "gcc-16"])
    marker = tmp_path / br.MARKER
    if damage == "no marker":
        marker.unlink()
    elif damage == "garbled marker":
        marker.write_text("{")
    elif damage == "tool missing":
        (tmp_path / "usr" / "bin" / "gcc-16").unlink()
    else:
        data = json.loads(marker.read_text())
        marker.write_text(json.dumps({**data, "format": br.FORMAT + 99}))
    assert br.load_root(tmp_path) is None


def test_a_damaged_root_is_rebuilt_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    table = load_series()
    path = br.root_dir(table.series["7.2"], table)
    path.mkdir(parents=True)
    (path / "leftover").write_text("from a killed run")
    made = []

    def make(series, table, dest):
        made.append(dest)
        dest.mkdir(parents=True)
        _sealed(dest, ["make", "gcc-16"])

    monkeypatch.setattr(br, "_make_root", make)
    root = br.build_root("7.2")
    assert made == [path] and root is not None and root.path == path
    assert not (path / "leftover").exists()
    assert br.build_root("7.2") == root and len(made) == 1      # sealed: used as it is


def test_installed_versions_reads_only_installed_packages(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Package: gcc-16\nStatus: install ok installed\nVersion: 16.2.0-4\n\n"
                      "Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n"
                      "Package: make\nStatus: install ok installed\nVersion: 4.4.1-2\n"
                      "Description: x\n more: text\n")
    assert br.installed_versions(status) == {"gcc-16": "16.2.0-4", "make": "4.4.1-2"}


def test_kernels_kmodlab_built_use_the_hosts_compiler(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []
    monkeypatch.setattr(br, "build_root", lambda s: asked.append(s) or "root")
    k = Kernel(arch="x86_64", series="7.2", flavour="cloud", release="r", package_version="v",
               root=tmp_path, image=tmp_path, vmlinux=None, config=tmp_path,
               system_map=tmp_path, modules_dir=tmp_path, headers_dir=tmp_path)
    assert br.root_for(k) == "root" and asked == ["7.2"]
    assert br.root_for(replace(k, config_names=("debug-memory",))) is None
