"""apt's output is parsed without apt: captured text in, records out."""

from __future__ import annotations

import json
import time

import pytest

from kmodlab.kernels.apt import (
    PrivateApt,
    parse_dlstatus,
    parse_madison,
    parse_search,
    sources_list,
)
from kmodlab.registry.series import load_series

MADISON = """\
linux-image-6.12.95+deb12-cloud-arm64:arm64 | 6.12.95-1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main arm64 Packages
linux-headers-6.12.95+deb12-common | 6.12.95-1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages
linux-headers-6.12.95+deb12-common | 6.12.95-1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main arm64 Packages
linux-kbuild-6.1 |  6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
linux-kbuild-6.1 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 Packages
     linux |  6.1.192-2 | http://deb.debian.org/debian-security bookworm-security/main Sources
N: Unable to locate package nonexistent
"""


def test_parse_madison():
    recs = parse_madison(MADISON)
    assert [(r.name, r.version, r.suite) for r in recs] == [
        ("linux-image-6.12.95+deb12-cloud-arm64:arm64", "6.12.95-1~bpo12+1", "bookworm-backports"),
        ("linux-headers-6.12.95+deb12-common", "6.12.95-1~bpo12+1", "bookworm-backports"),
        ("linux-kbuild-6.1", "6.1.192-2", "bookworm-security"),
        ("linux-kbuild-6.1", "6.1.176-1", "bookworm"),
    ]
    image = recs[0]
    assert image.base_name == "linux-image-6.12.95+deb12-cloud-arm64"
    assert image.index_arch == "arm64"
    # apt's own designation goes back to apt-get download verbatim
    assert image.download_spec == "linux-image-6.12.95+deb12-cloud-arm64:arm64=6.12.95-1~bpo12+1"
    assert recs[2].download_spec == "linux-kbuild-6.1=6.1.192-2"


def test_parse_search():
    text = ("linux-image-6.1.0-56-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)\n"
            "linux-image-6.1.0-56-amd64 - Linux 6.1 for 64-bit PCs (signed)\n"
            "linux-image-6.1.0-56-amd64 - Linux 6.1 for 64-bit PCs (signed)\n"
            "garbage line\n")
    assert parse_search(text) == ["linux-image-6.1.0-56-amd64", "linux-image-6.1.0-56-cloud-amd64"]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("dlstatus:2:25.4095:Retrieving file 2 of 4\n", (0.254095, "Retrieving file 2 of 4")),
        ("dlstatus:4:100.0000:Retrieving file 4 of 4", (1.0, "Retrieving file 4 of 4")),
        ("pmstatus:dpkg:10:Installing", None),
        ("dlstatus:1:abc:x", None),
    ],
)
def test_parse_dlstatus(line, expected):
    got = parse_dlstatus(line)
    if expected is None:
        assert got is None
    else:
        assert got[1] == expected[1] and got[0] == pytest.approx(expected[0])


def test_sources_list_has_every_suite_for_both_arches():
    text = sources_list(load_series(), ["amd64", "arm64"])
    lines = text.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert line.startswith(
            "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://"
        )
        assert line.endswith(" main")
    assert "debian-security bookworm-security main" in text
    assert "debian bookworm-backports main" in text


@pytest.fixture
def apt(tmp_path):
    return PrivateApt(tmp_path / "apt", load_series(), ["amd64", "arm64"], "amd64")


def test_options_confine_apt_to_the_private_dirs(apt, tmp_path):
    opts = apt.options()
    pairs = [opts[i + 1] for i in range(0, len(opts), 2)]
    assert all(opts[i] == "-o" for i in range(0, len(opts), 2))
    root = tmp_path / "apt"
    assert f"Dir::Etc::sourcelist={root}/sources.list" in pairs
    assert "Dir::Etc::sourceparts=-" in pairs
    assert f"Dir::State::Lists={root}/lists" in pairs
    assert f"Dir::Cache={root}/cache" in pairs
    assert f"Dir::State::status={root}/status" in pairs
    assert "APT::Architecture=amd64" in pairs
    assert [p for p in pairs if p.startswith("APT::Architectures::=")] == [
        "APT::Architectures::=amd64", "APT::Architectures::=arm64"]


def test_ensure_config_shuts_out_system_config(apt):
    apt.ensure_config()
    conf = apt.conf.read_text()
    assert 'Dir::Etc::main "/dev/null";' in conf
    assert f'Dir::Etc::parts "{apt.root / "empty.d"}";' in conf
    assert apt.status.read_text() == ""
    assert (apt.lists / "partial").is_dir()
    assert "bookworm-security" in apt.sources.read_text()


def test_freshness_follows_the_stamp(apt, monkeypatch):
    apt.ensure_config()
    assert apt.lists_age_hours() is None and not apt.is_fresh()
    apt.stamp.write_text(json.dumps({"time": time.time() - 3600, "sources": apt._sources_digest()}))
    assert apt.lists_age_hours() == pytest.approx(1.0, abs=0.01)
    assert apt.is_fresh()
    old = time.time() - 3600 * (load_series().archive.refresh_hours + 1)
    apt.stamp.write_text(json.dumps({"time": old, "sources": apt._sources_digest()}))
    assert not apt.is_fresh()
    # a changed sources.list (new suite in series.yaml) invalidates the lists
    apt.stamp.write_text(json.dumps({"time": time.time(), "sources": "something else"}))
    assert not apt.is_fresh()


def test_update_skips_when_fresh(apt, monkeypatch):
    apt.ensure_config()
    apt.stamp.write_text(json.dumps({"time": time.time(), "sources": apt._sources_digest()}))

    def boom(*a, **k):
        raise AssertionError("apt must not run")

    monkeypatch.setattr(apt, "_run", boom)
    assert apt.update() is False
