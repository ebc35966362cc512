"""The series table is data: these pin down what it says and how names are split."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kmodlab.errors import ConfigError
from kmodlab.registry.arch import arch_profile
from kmodlab.registry.series import ere_escape, load_series, release_name


@pytest.fixture(scope="module")
def table():
    return load_series()


def test_both_series_and_flavours_exist(table):
    assert set(table.series) >= {"6.1", "6.12"}
    assert set(table.flavours) >= {"cloud", "generic"}
    assert table.default_flavour == "cloud"


def test_series_suites(table):
    assert table.series["6.1"].suites == ("bookworm", "bookworm-updates", "bookworm-security")
    assert set(table.series["6.12"].suites) == {"bookworm-security", "bookworm-backports"}
    # one sources.list carries every suite, each once
    assert sorted(table.suites()) == sorted(
        {"bullseye", "bullseye-security", "bookworm", "bookworm-updates", "bookworm-security",
         "bookworm-backports", "sid"}
    )
    assert table.archive.mirror("bookworm-security").endswith("debian-security")


@pytest.mark.parametrize(
    "series, abi, ok",
    [
        ("6.1", "6.1.0-56", True),
        ("6.1", "6.1.0-9", True),
        ("6.1", "6.1.0-56-cloud", False),
        ("6.12", "6.12.117+deb12", True),
        ("6.12", "6.12.90+deb12.1", True),
        ("6.12", "6.12.117+bpo", False),
        ("6.12", "6.1.0-56", False),
    ],
)
def test_abi_patterns(table, series, abi, ok):
    assert table.series[series].matches_abi(abi) is ok


@pytest.mark.parametrize(
    "release, arch, abi, flavour",
    [
        ("6.1.0-56-cloud-amd64", "x86_64", "6.1.0-56", "cloud"),
        ("6.1.0-56-amd64", "x86_64", "6.1.0-56", "generic"),
        ("6.12.117+deb12-cloud-arm64", "arm64", "6.12.117+deb12", "cloud"),
        ("6.12.90+deb12.1-arm64", "arm64", "6.12.90+deb12.1", "generic"),
    ],
)
def test_split_release(table, release, arch, abi, flavour):
    got_abi, got_flavour = table.split_release(release, arch_profile(arch))
    assert (got_abi, got_flavour.name) == (abi, flavour)
    assert release_name(got_abi, got_flavour, arch_profile(arch)) == release


@pytest.mark.parametrize(
    "release, arch",
    [
        ("6.1.0-56-cloud-amd64", "arm64"),      # wrong arch
        ("6.12.117+deb12-arm64-64k", "arm64"),  # flavour kmodlab does not offer
        ("6.1.0-56-686-pae", "x86_64"),         # i386's
        ("4.19.0-27-amd64", "x86_64"),          # no such series
        ("7.2.13+deb13-amd64", "x86_64"),       # 7.2 is sid's (+deb14) only
    ],
)
def test_split_release_rejects(table, release, arch):
    assert table.split_release(release, arch_profile(arch)) is None


def test_unknown_series_and_flavour_name_what_exists(table):
    with pytest.raises(ConfigError, match=r"5\.10, 6\.1, 6\.12, 7\.2"):
        table.get_series("4.19")
    with pytest.raises(ConfigError, match="cloud, generic, rt, 16k"):
        table.get_flavour("64k")
    assert table.get_flavour(None).name == "cloud"
    assert table.get_series("latest").name == "7.2"


def test_each_arch_has_a_default_flavour_debian_builds(table):
    assert table.default_flavour_for(arch_profile("i386")).name == "generic"
    assert table.default_flavour_for(arch_profile("arm64")).name == "cloud"
    for arch in ("x86_64", "arm64", "i386"):
        profile = arch_profile(arch)
        flavour = table.default_flavour_for(profile)
        assert not flavour.arches or arch in flavour.arches


def test_ere_escape_is_literal_for_grep():
    names = ["linux-image-6.12.117+deb12-amd64", "linux-image-6.12.117xdeb12-amd64"]
    pattern = "^" + ere_escape(names[0]) + "$"
    out = subprocess.run(["grep", "-E", pattern], input="\n".join(names) + "\n", check=False,
                         capture_output=True, text=True).stdout.split()
    assert out == [names[0]]
    assert re.fullmatch(pattern.strip("^$"), names[0])


def test_malformed_table_is_a_config_error(tmp_path: Path):
    bad = tmp_path / "series.yaml"
    bad.write_text("default_flavour: cloud\nflavours: {}\n")
    with pytest.raises(ConfigError, match="series.yaml"):
        load_series.__wrapped__(bad)
