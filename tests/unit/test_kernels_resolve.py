"""Resolution decides which kernel a run uses: pure parts tested on hand-made apt data."""

from __future__ import annotations

import re
import subprocess

import pytest

from kmodlab.errors import ConfigError
from kmodlab.kernels.apt import AptRecord
from kmodlab.kernels.resolution import (
    abis_by_flavour,
    choose,
    complete_candidates,
    image_search_regex,
    madison_queries,
    parse_spec,
    resolve,
)
from kmodlab.registry.arch import arch_profile
from kmodlab.registry.series import load_series

T = load_series()
X86, ARM, I386 = arch_profile("x86_64"), arch_profile("arm64"), arch_profile("i386")


# ------------------------------------------------------------------ specs

@pytest.mark.parametrize(
    "profile, spec, flavour, series, flav, abi",
    [
        (X86, "6.1", None, "6.1", "cloud", None),
        (X86, "6.12", "generic", "6.12", "generic", None),
        (X86, "6.1.0-56", None, "6.1", "cloud", "6.1.0-56"),
        (ARM, "6.12.57+deb12", "generic", "6.12", "generic", "6.12.57+deb12"),
        (X86, "6.1.0-56-amd64", None, "6.1", "generic", "6.1.0-56"),
        (ARM, "6.12.117+deb12-cloud-arm64", "cloud", "6.12", "cloud", "6.12.117+deb12"),
        (X86, "latest", None, "7.2", "cloud", None),
        (X86, "7.2.13+deb14-rt-amd64", None, "7.2", "rt", "7.2.13+deb14"),
        (ARM, "7.2.13+deb14-arm64-16k", None, "7.2", "16k", "7.2.13+deb14"),
        (I386, "5.10.0-32", None, "5.10", "generic", "5.10.0-32"),   # no cloud on i386
        (I386, "6.1.0-57-686-pae", None, "6.1", "generic", "6.1.0-57"),
        (I386, "6.1.0-57-rt-686-pae", None, "6.1", "rt", "6.1.0-57"),
    ],
)
def test_parse_spec(profile, spec, flavour, series, flav, abi):
    req = parse_spec(T, profile, spec, flavour)
    assert (req.series.name, req.flavour.name, req.abi) == (series, flav, abi)


def test_parse_spec_release_property():
    assert parse_spec(T, ARM, "6.1.0-56").release == "6.1.0-56-cloud-arm64"


@pytest.mark.parametrize(
    "profile, spec, flavour, message",
    [
        (X86, "6.2", None, r"series \(5\.10, 6\.1, 6\.12, 7\.2\)"),
        (X86, "6.1.0-56-cloud-arm64", None, "built for arm64"),
        (X86, "6.1.0-56-amd64", "cloud", "'generic' flavour"),
        (X86, "6.1", "64k", "known: cloud, generic, rt, 16k"),
    ],
)
def test_parse_spec_errors(profile, spec, flavour, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(T, profile, spec, flavour)


# ------------------------------------------------------------------ names

NAMES = [
    "linux-image-6.1.0-56-cloud-amd64",
    "linux-image-6.1.0-56-cloud-amd64-unsigned",
    "linux-image-6.1.0-56-amd64",
    "linux-image-6.1.0-56-amd64-dbg",
    "linux-image-6.1.0-56-rt-amd64",
    "linux-image-6.1.0-9-cloud-amd64",
    "linux-image-6.1.0-56-cloud-arm64",
    "linux-image-6.12.117+deb12-cloud-amd64",
    "linux-image-cloud-amd64",
]


def _grep(pattern: str, names: list[str]) -> list[str]:
    """What apt-cache's POSIX ERE matching would select (grep -E speaks the same dialect)."""
    out = subprocess.run(["grep", "-E", pattern], input="\n".join(names) + "\n", check=False,
                         capture_output=True, text=True).stdout
    return out.split()


def test_image_search_regex_is_ere_and_selects_only_our_images():
    ere = image_search_regex(T, T.series["6.1"], X86)
    assert "\\d" not in ere
    assert _grep(ere, NAMES) == [
        "linux-image-6.1.0-56-cloud-amd64",
        "linux-image-6.1.0-56-cloud-amd64-unsigned",
        "linux-image-6.1.0-56-amd64",
        "linux-image-6.1.0-56-rt-amd64",
        "linux-image-6.1.0-9-cloud-amd64",
    ]


def test_abis_by_flavour():
    found = abis_by_flavour(T, T.series["6.1"], X86, NAMES)
    assert found == {"cloud": {"6.1.0-56", "6.1.0-9"}, "generic": {"6.1.0-56"},
                     "rt": {"6.1.0-56"}}
    found = abis_by_flavour(T, T.series["6.12"], X86, NAMES)
    assert found == {"cloud": {"6.12.117+deb12"}}


def test_madison_queries_qualify_arches():
    q = madison_queries(T.series["6.1"], T.flavours["cloud"], ARM, "amd64", "6.1.0-56")
    assert "linux-image-6.1.0-56-cloud-arm64:arm64" in q
    assert "linux-headers-6.1.0-56-common:all" in q       # arch-all package
    assert "linux-kbuild-6.1:amd64" in q                  # host tools, not the kernel's arch
    assert not any(n.startswith("linux-kbuild") and n.endswith(":arm64") for n in q)


def test_rt_kernels_before_7_need_the_rt_common_headers():
    """linux-headers-6.1.0-57-rt-amd64's Makefile includes linux-headers-6.1.0-57-common-rt;
    asking for -common gave a headers tree that failed its check after a full download (6.1 and
    6.12 rt).  7.2's rt headers use the one common tree."""
    q = madison_queries(T.series["6.1"], T.flavours["rt"], X86, "amd64", "6.1.0-57")
    assert "linux-headers-6.1.0-57-common-rt:all" in q
    assert "linux-headers-6.1.0-57-common:all" not in q
    assert "linux-headers-6.1.0-57-common:all" in madison_queries(
        T.series["6.1"], T.flavours["cloud"], X86, "amd64", "6.1.0-57")
    q = madison_queries(T.series["7.2"], T.flavours["rt"], X86, "amd64", "7.2.13+deb14")
    assert "linux-headers-7.2.13+deb14-common:all" in q


# ------------------------------------------------------------------ choosing

def rec(name: str, version: str, suite: str = "bookworm-security") -> AptRecord:
    return AptRecord(name, version, suite, "amd64")


def full_set(abi: str, version: str, *, suite: str = "bookworm-security",
             kbuild: str = "linux-kbuild-6.1", arch: str = "") -> list[AptRecord]:
    q = f":{arch}" if arch else ""
    flav = f"cloud-{arch or 'amd64'}"
    return [
        rec(f"linux-image-{abi}-{flav}{q}", version, suite),
        rec(f"linux-headers-{abi}-{flav}{q}", version, suite),
        rec(f"linux-headers-{abi}-common", version, suite),
        rec(kbuild, version, suite),
    ]


S61, CLOUD = T.series["6.1"], T.flavours["cloud"]


def test_newest_complete_wins_by_debian_version():
    records = (full_set("6.1.0-9", "6.1.20-1") + full_set("6.1.0-56", "6.1.192-2")
               + full_set("6.1.0-50", "6.1.176-1", suite="bookworm"))
    cands, problems = complete_candidates(S61, CLOUD, X86, ["6.1.0-9", "6.1.0-56", "6.1.0-50"],
                                          records)
    assert [c.release for c in cands] == [
        "6.1.0-56-cloud-amd64", "6.1.0-50-cloud-amd64", "6.1.0-9-cloud-amd64"]
    assert problems == {}
    best = cands[0]
    assert best.version == "6.1.192-2" and best.suite == "bookworm-security"
    assert [r.base_name for r in best.support] == [
        "linux-headers-6.1.0-56-cloud-amd64", "linux-headers-6.1.0-56-common", "linux-kbuild-6.1"]


def test_image_without_headers_is_skipped_with_a_reason():
    records = full_set("6.1.0-50", "6.1.176-1") + [
        rec("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")]
    cands, problems = complete_candidates(S61, CLOUD, X86, ["6.1.0-50", "6.1.0-56"], records)
    assert [c.abi for c in cands] == ["6.1.0-50"]
    assert "linux-headers-6.1.0-56-cloud-amd64" in problems["6.1.0-56"]


def test_kbuild_must_have_the_same_version():
    records = full_set("6.1.0-56", "6.1.192-2")
    records[-1] = rec("linux-kbuild-6.1", "6.1.192-1")
    cands, problems = complete_candidates(S61, CLOUD, X86, ["6.1.0-56"], records)
    assert cands == [] and "linux-kbuild-6.1" in problems["6.1.0-56"]


def test_records_outside_the_series_suites_are_ignored():
    records = full_set("6.1.0-56", "6.1.192-2", suite="bookworm-backports")
    cands, _ = complete_candidates(S61, CLOUD, X86, ["6.1.0-56"], records)
    assert cands == []


def test_unsigned_image_is_an_alternative():
    records = full_set("6.1.0-56", "6.1.192-2") + [
        rec("linux-image-6.1.0-56-cloud-amd64-unsigned", "6.1.192-2")]
    (c,), _ = complete_candidates(S61, CLOUD, X86, ["6.1.0-56"], records)
    assert [r.base_name for r in c.images] == [
        "linux-image-6.1.0-56-cloud-amd64", "linux-image-6.1.0-56-cloud-amd64-unsigned"]


def test_foreign_arch_records_keep_their_qualifier():
    records = full_set("6.1.0-56", "6.1.192-2", arch="arm64")
    (c,), _ = complete_candidates(S61, CLOUD, ARM, ["6.1.0-56"], records)
    assert c.images[0].download_spec == "linux-image-6.1.0-56-cloud-arm64:arm64=6.1.192-2"
    assert c.release == "6.1.0-56-cloud-arm64"


def test_choose_exact_and_errors():
    records = full_set("6.1.0-56", "6.1.192-2") + full_set("6.1.0-50", "6.1.176-1")
    cands, problems = complete_candidates(S61, CLOUD, X86, ["6.1.0-56", "6.1.0-50"], records)
    assert choose(parse_spec(T, X86, "6.1"), cands, problems).abi == "6.1.0-56"
    assert choose(parse_spec(T, X86, "6.1.0-50"), cands, problems).abi == "6.1.0-50"
    with pytest.raises(ConfigError, match=r"6\.1\.0-55-cloud-amd64.*6\.1\.0-56-cloud-amd64, "
                                          r"6\.1\.0-50-cloud-amd64"):
        choose(parse_spec(T, X86, "6.1.0-55"), cands, problems)


def test_missing_flavour_names_the_ones_that_exist():
    with pytest.raises(ConfigError, match="no cloud kernel for arm64.*that exist: generic"):
        choose(parse_spec(T, ARM, "6.1"), [], {}, ["generic"])


# ------------------------------------------------------------------ resolve() with a fake apt

class FakeApt:
    """Answers search/madison from a fixed record list, like a PrivateApt with local lists."""

    host_arch = "amd64"

    def __init__(self, records: list[AptRecord], missing=()):
        self.records = records
        self.updated = 0
        self.missing = list(missing)

    def missing_lists(self, suites):
        return [f for f in self.missing if any(f.covers(s) for s in suites)]

    def update(self, *, force=False, progress=None):
        self.updated += 1
        return True

    def search_names(self, ere: str) -> list[str]:
        names = sorted({r.base_name for r in self.records})
        return [n for n in names if re.search(ere, n)]

    def madison(self, names):
        wanted = set(names)
        out = []
        for r in self.records:
            arch = r.name.partition(":")[2] or "amd64"
            if (f"{r.base_name}:{arch}" in wanted or f"{r.base_name}:all" in wanted):
                out.append(r)
        return out


def test_a_kernel_resolved_without_a_list_the_archive_did_not_serve_says_so(caplog):
    """bookworm-security's i386 list failed (mirror mid-sync), and apt dropped the suite: a 6.1
    kernel is still resolved from the lists that arrived, but the result carries the gap (so it
    is pinned briefly) and it is said; a series whose suites all arrived is unaffected."""
    from kmodlab.kernels.apt import IndexFailure

    apt = FakeApt(full_set("6.1.0-56", "6.1.192-2"),
                  missing=[IndexFailure("bullseye-security", "i386", "File has unexpected size")])
    with caplog.at_level("WARNING"):
        r = resolve("x86_64", "6.1", apt=apt)
    assert r.partial == () and caplog.text == ""
    apt.missing = [IndexFailure("bookworm-security", "i386", "File has unexpected size")]
    with caplog.at_level("WARNING"):
        r = resolve("x86_64", "6.1", apt=apt)
    assert r.partial == ("bookworm-security i386 package list: File has unexpected size",)
    assert "newer kernel may exist" in caplog.text and "pinned for 15 minutes only" in caplog.text


def test_resolve_end_to_end_with_fake_apt():
    apt = FakeApt(full_set("6.1.0-56", "6.1.192-2") + full_set("6.1.0-50", "6.1.176-1")
                  + [rec("linux-image-6.1.0-57-cloud-amd64", "6.1.200-1")])
    r = resolve("x86_64", "6.1", apt=apt)
    assert r.release == "6.1.0-56-cloud-amd64" and apt.updated == 1
    with pytest.raises(ConfigError, match="6.1.0-57-cloud-amd64.*lacks"):
        resolve("x86_64", "6.1.0-57", apt=apt)


def test_each_arch_has_its_own_apt_so_another_arch_list_cannot_hide_its_kernels(
        tmp_path, monkeypatch) -> None:
    """apt drops a suite's new lists when any one of them fails: with one apt for every arch,
    bookworm-security's i386 list served mid-sync hid that suite's amd64 kernels, and x86_64
    6.12 resolved to an older backport.  Each arch's apt fetches only its lists and the
    host's."""
    from kmodlab.kernels import resolution
    from kmodlab.kernels.apt import sources_list

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(resolution, "_host_arch", lambda: "amd64")
    x86, i386, arm = (resolution.default_apt(a) for a in ("x86_64", "i386", "arm64"))
    assert x86.arches == ["amd64"] and i386.arches == ["amd64", "i386"]
    assert arm.arches == ["amd64", "arm64"]
    assert len({x86.root, i386.root, arm.root}) == 3
    assert "i386" not in sources_list(x86.table, x86.arches)
    assert resolution.default_apt().arches == ["amd64"]          # linux-source: the host's
