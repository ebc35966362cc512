"""Debian version ordering must agree with dpkg: it picks the newest kernel."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmodlab.kernels.debversion import DebVersion, compare_versions, version_key

PAIRS = [
    ("6.1.192-2", "6.1.192-1", 1),
    ("6.1.0-9", "6.1.0-56", -1),
    ("6.12.95-1~bpo12+1", "6.12.95-1", -1),
    ("6.12.117-1~deb12u1", "6.12.95-1~bpo12+1", 1),
    ("6.12.90-2~bpo12+1", "6.12.90-1~bpo12+1", 1),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1:0.1", "9.9", 1),
    ("1.0a", "1.0", 1),
    ("1.0-1", "1.0-1", 0),
    ("2.0.0", "2.0", 1),
    ("1.00", "1.0", 0),
    ("1.0~~", "1.0~", -1),
]


@pytest.mark.parametrize("a, b, sign", PAIRS)
def test_known_orderings(a, b, sign):
    got = compare_versions(a, b)
    assert (got > 0) - (got < 0) == sign
    back = compare_versions(b, a)
    assert (back > 0) - (back < 0) == -sign


def test_sorting_kernel_versions():
    versions = ["6.1.192-2", "6.1.176-1", "6.1.192-1", "6.1.99-1"]
    assert sorted(versions, key=version_key) == ["6.1.99-1", "6.1.176-1", "6.1.192-1", "6.1.192-2"]


def test_parse():
    assert DebVersion.parse("1:6.12.95-1~bpo12+1") == DebVersion(1, "6.12.95", "1~bpo12+1")
    assert DebVersion.parse("6.1") == DebVersion(0, "6.1", "")
    with pytest.raises(ValueError):
        DebVersion.parse("x1.0")


def _dpkg_sign(a: str, b: str) -> int:
    def check(op: str) -> bool:
        return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0
    return 1 if check("gt") else -1 if check("lt") else 0


part = st.text(alphabet="0123456789.~+ab", min_size=1, max_size=6)


@pytest.mark.skipif(not shutil.which("dpkg"), reason="needs dpkg to compare with")
@settings(max_examples=150, deadline=None)
@given(st.tuples(st.sampled_from("0123456789"), part, st.sampled_from(["", "-1", "-1~bpo12+1"])),
       st.tuples(st.sampled_from("0123456789"), part, st.sampled_from(["", "-2", "-1~deb12u1"])))
def test_agrees_with_dpkg(x, y):
    a, b = "".join(x), "".join(y)
    got = compare_versions(a, b)
    assert (got > 0) - (got < 0) == _dpkg_sign(a, b)
