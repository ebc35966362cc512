"""Debian version ordering, as ``dpkg --compare-versions`` does it (lib/dpkg/version.c).

"Newest kernel" means newest by this order, never by string or by tuple-of-ints: ``6.1.0-9`` is
older than ``6.1.0-56``, ``6.12.95-1~bpo12+1`` is older than ``6.12.95-1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class DebVersion:
    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> DebVersion:
        text = text.strip()
        epoch = 0
        if ":" in text:
            head, _, text = text.partition(":")
            if not head.isdigit():
                raise ValueError(f"bad epoch in Debian version {head!r}")
            epoch = int(head)
        upstream, sep, revision = text.rpartition("-")
        if not sep:
            upstream, revision = text, ""
        if not upstream or not upstream[0].isdigit():
            raise ValueError(f"Debian version must start with a digit: {text!r}")
        return cls(epoch, upstream, revision)


def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def compare_versions(a: str, b: str) -> int:
    """<0, 0, >0 as a is older than, equal to, newer than b."""
    va, vb = DebVersion.parse(a), DebVersion.parse(b)
    if va.epoch != vb.epoch:
        return va.epoch - vb.epoch
    return _verrevcmp(va.upstream, vb.upstream) or _verrevcmp(va.revision, vb.revision)


version_key = functools.cmp_to_key(compare_versions)
"""``sorted(versions, key=version_key)`` sorts oldest first."""
