"""apt's output is parsed without apt: captured text in, records out."""

from __future__ import annotations

import json
import time
from pathlib import Path

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
    assert len(lines) == len(load_series().suites())
    for line in lines:
        assert line.startswith(
            "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"
        )
        assert line.endswith(" main")
    # unstable's index may be past Valid-Until in the archive reached here; only it is excused
    stale = [line for line in lines if "check-valid-until=no" in line]
    assert [line.split()[-2] for line in stale] == ["sid"]
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


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "apt"


def test_a_list_the_mirror_serves_mid_sync_is_named():
    """Real output (2026-12-05): bookworm-security's i386 Packages.xz had the wrong size."""
    from kmodlab.kernels.apt import IndexFailure, parse_update_failures

    text = (FIXTURES / "update-mirror-sync.txt").read_text()
    assert parse_update_failures(text) == [IndexFailure(
        "bookworm-security", "i386", "File has unexpected size (371952 != 372316). Mirror sync "
        "in progress? [IP: 203.0.113.80 80]")]
    offline = parse_update_failures((FIXTURES / "update-offline.txt").read_text())
    assert offline and all(f.arch is None for f in offline)
    assert {f.suite for f in offline} == set(load_series().suites())


def _fake_update(apt, monkeypatch, name: str, rc: int) -> None:
    import subprocess

    text = (FIXTURES / name).read_text()
    monkeypatch.setattr(apt, "_run", lambda tool, args, **k: subprocess.CompletedProcess(
        [tool, *args], rc, text, ""))


def test_one_failed_list_is_recorded_and_the_others_are_kept(apt, monkeypatch, caplog):
    """It used to fail every kernel, on every arch, for one arch's list of one suite; now the
    update goes through, the gap is recorded for resolution, and retried soon."""
    from kmodlab.kernels import apt as apt_mod

    apt.ensure_config()
    _fake_update(apt, monkeypatch, "update-mirror-sync.txt", 100)
    with caplog.at_level("WARNING"):
        assert apt.update(force=True) is True
    assert "bookworm-security i386 package list" in caplog.text
    assert [str(f) for f in apt.missing_lists(["bookworm", "bookworm-security"])] == [
        ("bookworm-security i386 package list: File has unexpected size (371952 != 372316). "
         "Mirror sync in progress? [IP: 203.0.113.80 80]")]
    assert apt.missing_lists(["bookworm-backports", "sid"]) == []    # other suites are whole
    assert apt.is_fresh()
    stamp = json.loads(apt.stamp.read_text())
    stamp["time"] -= apt_mod.FAILED_RETRY_HOURS * 3600 + 1
    apt.stamp.write_text(json.dumps(stamp))
    assert not apt.is_fresh()        # retried well before refresh_hours


def test_an_archive_out_of_reach_is_still_an_error(apt, monkeypatch):
    """apt-get update exits 0 when it cannot connect at all; every suite failed: raise."""
    from kmodlab.errors import ProvisionError

    apt.ensure_config()
    _fake_update(apt, monkeypatch, "update-offline.txt", 0)
    with pytest.raises(ProvisionError, match="Check the network"):
        apt.update(force=True)
    assert not apt.stamp.exists()


# What apt-get download printed for bullseye-security's i386 5.10.0-46 (measured 2026-12-05).
APT_404 = """\
Err:4 http://deb.debian.org/debian-security bullseye-security/main i386 linux-image-5.10.0-46-686-pae i386 5.10.262-1
  404  Not Found [IP: 203.0.113.80 80]
Fetched 10.6 MB in 0s (24.8 MB/s)
E: Failed to fetch http://deb.debian.org/debian-security/pool/updates/main/l/linux/linux-headers-5.10.0-46-686-pae_5.10.262-1_i386.deb  404  Not Found [IP: 203.0.113.80 80]
E: Failed to fetch http://deb.debian.org/debian-security/pool/updates/main/l/linux-signed-i386/linux-image-5.10.0-46-686-pae_5.10.262-1_i386.deb  404  Not Found [IP: 203.0.113.80 80]
"""


def test_files_missing_from_the_pool_are_named_and_network_errors_are_not():
    from kmodlab.kernels.apt import missing_from_pool

    assert missing_from_pool(APT_404) == [
        "linux-headers-5.10.0-46-686-pae_5.10.262-1_i386.deb",
        "linux-image-5.10.0-46-686-pae_5.10.262-1_i386.deb"]
    offline = ("E: Failed to fetch http://deb.debian.org/debian/pool/main/l/linux/x_1_amd64.deb  "
               "Temporary failure resolving 'deb.debian.org'\n")
    assert missing_from_pool(offline) == []


def test_first_in_pool_skips_what_the_pool_lacks_and_says_so(caplog) -> None:
    """Kernels and linux-source fall back the same way (one helper serves both): a version the
    signed index lists but the pool answers 404 for is skipped and named; none is an error."""
    from kmodlab.errors import ProvisionError
    from kmodlab.kernels.apt import NotInPool, first_in_pool

    def fetch(version: str) -> str:
        if version.endswith("-46"):
            raise NotInPool([f"linux-image-{version}.deb"], "404")
        return f"unpacked {version}"

    with caplog.at_level("WARNING"):
        got = first_in_pool(["5.10.0-46", "5.10.0-32"], fetch, str, "kernels")
    assert got == ("5.10.0-32", "unpacked 5.10.0-32")
    assert "linux-image-5.10.0-46.deb" in caplog.text and "using 5.10.0-32" in caplog.text
    with pytest.raises(ProvisionError, match="no kernels could be downloaded.*5.10.0-46"):
        first_in_pool(["5.10.0-46"], fetch, str, "kernels")
