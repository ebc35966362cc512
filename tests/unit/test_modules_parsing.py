"""``-p key=value`` strings to typed parameters."""

from __future__ import annotations

import pytest

from kmodlab.errors import ConfigError
from kmodlab.modules import parse_params
from kmodlab.modules.params import DevresParams, KmallocParams, KmemCacheParams
from kmodlab.modules.parsing import parse_bool, parse_int


def test_lists_ints_and_flags() -> None:
    p = parse_params("kmalloc", ["sizes=8,96,160", "gfp=GFP_KERNEL,GFP_ATOMIC|__GFP_NOWARN",
                                 "zero=yes", "count=0x10"])
    assert isinstance(p, KmallocParams)
    assert p.sizes == [8, 96, 160]
    assert p.gfp == ["GFP_KERNEL", "GFP_ATOMIC|__GFP_NOWARN"]
    assert p.zero is True and p.count == 16
    assert p.krealloc == [64, 100, 200, 5000, 10000]  # untouched defaults


def test_the_brief_example() -> None:
    p = parse_params("kmem_cache", ["flags=SLAB_HWCACHE_ALIGN", "size=200", "ctor=1"])
    assert isinstance(p, KmemCacheParams)
    assert (p.flags, p.size, p.ctor) == (["SLAB_HWCACHE_ALIGN"], 200, True)


def test_size_suffixes() -> None:
    assert parse_int("4K") == 4096
    assert parse_int("8MiB") == 8 << 20
    assert parse_int("0x1000") == 4096
    assert parse_int("010") == 10
    assert parse_int("-5") == -5
    with pytest.raises(ValueError):
        parse_int("lots")
    assert parse_params("vmalloc", ["sizes=4K,8M"]).sizes == [4096, 8 << 20]


def test_booleans_and_none() -> None:
    assert parse_bool("off") is False and parse_bool("True") is True
    p = parse_params("devres", ["page_order=none", "kmalloc_sizes="])
    assert isinstance(p, DevresParams)
    assert p.page_order is None and p.kmalloc_sizes == []


@pytest.mark.parametrize(
    ("items", "match"),
    [
        (["sizes=-5"], r"kmalloc: invalid parameters:\n  parameter 'sizes' item 0 = -5.*1\.\.4194304"),
        (["gfp=GFP_WHATEVER"], r"'gfp' item 0.*unknown or unsupported GFP flag 'GFP_WHATEVER'"),
        (["sizes=8,abc"], r"kmalloc: parameter 'sizes': 'abc' is not an integer"),
        (["bogus=1"], r"unknown parameter 'bogus'; known: sizes, gfp"),
        (["sizes"], r"not of the form key=value"),
        (["sizes=8", "sizes=16"], r"'sizes' given twice"),
        (["zero=maybe"], r"'zero'.*not a boolean"),
    ],
)
def test_errors_name_the_parameter(items: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_params("kmalloc", items)


def test_pages_order_beyond_maximum() -> None:
    with pytest.raises(ConfigError, match=r"(?s)pages:.*'max_order' = 11.*0\.\.10"):
        parse_params("pages", ["max_order=11"])


def test_unknown_family() -> None:
    with pytest.raises(ConfigError, match="unknown module family 'slab'; known: kmalloc"):
        parse_params("slab", [])
