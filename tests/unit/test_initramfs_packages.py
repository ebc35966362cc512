"""Guest package selection: apt output parsing and the per-arch facts (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import ProvisionError
from kmodlab.images.guest_packages import (
    DEBIAN_SUITE,
    PrivateApt,
    guest_arch,
    lib_deps,
    parse_stanzas,
)
from kmodlab.registry.arch import arch_profile, known_arches

SHOW = """\
Package: dropbear-bin
Version: 2025.89-1~deb13u1
Depends: libc6 (>= 2.38), libcrypt1 (>= 1:4.1.0), libtomcrypt1 (>= 1.18.2), \
libtommath1 (>= 1.2.0), zlib1g (>= 1:1.1.4)
Description: lightweight SSH2 server and client
 Dropbear is a relatively small SSH 2 server and client.
 .
 More text.

Package: openssh-sftp-server
Version: 1:10.0p1-7
Pre-Depends: libc6:any (>= 2.36) | libc6-alt
Depends: openssh-client (= 1:10.0p1-7), libc6 (>= 2.38)
"""


def test_parse_stanzas_and_library_dependencies() -> None:
    stanzas = {s["Package"]: s for s in parse_stanzas(SHOW)}
    assert stanzas["dropbear-bin"]["Version"] == "2025.89-1~deb13u1"
    assert "More text." in stanzas["dropbear-bin"]["Description"]
    assert lib_deps(stanzas["dropbear-bin"]) == ["libc6", "libcrypt1", "libtomcrypt1",
                                                 "libtommath1", "zlib1g"]
    # Only library packages are followed: the sftp server never needs openssh-client.
    assert lib_deps(stanzas["openssh-sftp-server"]) == ["libc6", "libc6"]


def test_every_arch_profile_has_guest_facts() -> None:
    for name in known_arches():
        facts = guest_arch(arch_profile(name).debian_arch)
        assert facts.loader.startswith("/lib")
        assert facts.search_dirs[0] == facts.lib_dir == f"/lib/{facts.triplet}"
    with pytest.raises(ProvisionError, match="guest: section"):
        guest_arch("mips64el")


def test_private_apt_uses_only_its_own_state(tmp_path: Path) -> None:
    if not Path("/usr/share/keyrings/debian-archive-keyring.gpg").is_file():
        pytest.skip("debian-archive-keyring is not installed")
    apt = PrivateApt(tmp_path / "apt", "arm64")
    opts = dict(o.split("=", 1) for o in apt.options()[1::2])
    assert opts["APT::Architecture"] == "arm64" and opts["APT::Architectures::"] == "arm64"
    for key in ("Dir::Etc::sourcelist", "Dir::Etc::sourceparts", "Dir::State::Lists",
                "Dir::State::status", "Dir::Cache"):
        assert opts[key].startswith(str(tmp_path)), key
    sources = (tmp_path / "apt/sources.list").read_text()
    assert f" {DEBIAN_SUITE} main" in sources and f" {DEBIAN_SUITE}-security main" in sources


def test_a_security_suite_the_mirror_serves_mid_sync_does_not_stop_the_userland(
        tmp_path, monkeypatch, caplog) -> None:
    """trixie-security's i386 list came at the wrong size (2026-12-05) and every fresh i386
    guest failed to build its userland; the base suite's lists are what it needs.  A failure of
    the base suite, or one apt does not pin on a list, is still an error."""
    import subprocess
    from pathlib import Path

    import pytest

    from kmodlab.errors import ProvisionError
    from kmodlab.images import guest_packages as gp

    sync = (Path(__file__).resolve().parents[1] / "fixtures" / "apt"
            / "update-mirror-sync.txt").read_text()
    apt = gp.PrivateApt(tmp_path / "apt", "i386")
    answer = {"text": sync.replace("bookworm-security", f"{gp.DEBIAN_SUITE}-security"), "rc": 100}
    monkeypatch.setattr(gp.subprocess, "run", lambda argv, **k: subprocess.CompletedProcess(
        argv, answer["rc"], answer["text"], ""))
    with caplog.at_level("WARNING"):
        apt.update()
    assert f"without {gp.DEBIAN_SUITE}-security" in caplog.text
    answer["text"] = sync.replace("bookworm-security", gp.DEBIAN_SUITE)
    with pytest.raises(ProvisionError, match="apt-get update"):
        apt.update()
    answer["text"] = "E: something apt does not pin on a list\n"
    with pytest.raises(ProvisionError):
        apt.update()
