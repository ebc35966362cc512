"""Parameter schemas: defaults, ranges and kernel-dependent limits, all before rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import ConfigError
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import FAMILIES, MEASURED_FAMILIES, PARAMS, limits, parse_params, render
from kmodlab.modules.gfp import parse_gfp
from kmodlab.modules.params.base import validate_params


def fake_kernel(tmp_path: Path, arch: str = "x86_64", release: str = "6.1.0-56-cloud-amd64",
                config: str = "") -> Kernel:
    root = tmp_path / f"kernel-{arch}-{release}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "config").write_text(config)
    series = ".".join(release.split(".")[:2])
    return Kernel(arch=arch, series=series, flavour="cloud", release=release, package_version="",
                  root=root, image=root / "image", vmlinux=None, config=root / "config",
                  system_map=root / "System.map", modules_dir=root / "modules",
                  headers_dir=root / "headers")


def test_nine_measured_families_and_bugs_each_with_a_schema() -> None:
    assert list(FAMILIES) == ["kmalloc", "kmem_cache", "mempool", "vmalloc", "percpu", "devres",
                              "pages", "ioremap", "dma", "bugs"]
    assert MEASURED_FAMILIES == ("kmalloc", "kmem_cache", "mempool", "vmalloc", "percpu",
                                 "devres", "pages", "ioremap", "dma")
    for name, fam in FAMILIES.items():
        assert fam.params is PARAMS[name]
        assert fam.module_name == f"kml_{name}"


@pytest.mark.parametrize("family", MEASURED_FAMILIES)   # bugs has no default bug
def test_defaults_are_valid_and_fit_the_memory_budget(family: str) -> None:
    params = validate_params(PARAMS[family], {})
    assert params.held_bytes() <= limits.MAX_HELD_BYTES


@pytest.mark.parametrize(
    ("family", "data", "param", "allowed"),
    [
        ("kmalloc", {"sizes": [-5]}, "sizes", "1..4194304"),
        ("kmalloc", {"sizes": [0]}, "sizes", "1..4194304"),
        ("kmalloc", {"sizes": [4194305]}, "sizes", "KMALLOC_MAX_SIZE"),
        ("kmalloc", {"gfp": ["GFP_BOGUS"]}, "gfp", "GFP_KERNEL"),
        ("kmalloc", {"gfp": ["GFP_DMA32"]}, "gfp", "GFP_ATOMIC"),  # in GFP_SLAB_BUG_MASK
        ("kmem_cache", {"align": 24}, "align", "power of two"),
        ("kmem_cache", {"flags": ["SLAB_PANIC"]}, "flags", "SLAB_HWCACHE_ALIGN"),
        ("kmem_cache", {"count": 100001}, "count", "1..100000"),
        ("kmem_cache", {"name": 'x"; evil(); "'}, "name", "C identifier"),
        ("mempool", {"min_nr": 0}, "min_nr", "1..1024"),
        ("mempool", {"kinds": ["slab", "heap"]}, "kinds", "slab, kmalloc, page"),
        ("pages", {"max_order": 11}, "max_order", "0..10"),
        ("pages", {"max_order": -1}, "max_order", "0..10"),
        ("percpu", {"sizes": [40000]}, "sizes", "PCPU_MIN_UNIT_SIZE"),
        ("vmalloc", {"apis": ["kmalloc"]}, "apis", "vzalloc"),
        ("devres", {"page_order": 12}, "page_order", "none"),
    ],
)
def test_bad_values_name_family_parameter_and_range(family: str, data: dict, param: str,
                                                     allowed: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_params(PARAMS[family], data)
    message = str(exc.value)
    assert message.startswith(family + ":")
    assert f"'{param}'" in message
    assert allowed in message


def test_unknown_parameter_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown parameter 'size'.*sizes"):
        validate_params(PARAMS["kmalloc"], {"size": [8]})


def test_duplicates_are_refused_because_they_name_tests() -> None:
    with pytest.raises(ConfigError, match="twice"):
        validate_params(PARAMS["kmalloc"], {"sizes": [8, 8]})
    with pytest.raises(ConfigError, match="twice"):
        validate_params(PARAMS["kmalloc"], {"gfp": ["GFP_KERNEL", "GFP_KERNEL"]})


def test_memory_budget_is_enforced() -> None:
    with pytest.raises(ConfigError, match="MiB"):
        validate_params(PARAMS["kmalloc"], {"sizes": [4 << 20], "gfp": ["GFP_KERNEL"], "count": 100})
    with pytest.raises(ConfigError, match="objects"):
        validate_params(PARAMS["kmalloc"], {"sizes": [8, 16], "count": 10000, "gfp": [
            "GFP_KERNEL", "GFP_ATOMIC", "GFP_NOWAIT", "GFP_NOIO", "GFP_NOFS", "GFP_KERNEL_ACCOUNT"]})


def test_krealloc_needs_two_sizes_or_none() -> None:
    with pytest.raises(ConfigError, match="krealloc"):
        validate_params(PARAMS["kmalloc"], {"krealloc": [64]})
    assert validate_params(PARAMS["kmalloc"], {"krealloc": []}).krealloc == []


def test_gfp_expressions() -> None:
    g = parse_gfp("GFP_KERNEL | GFP_DMA")
    assert (g.name, g.c_expr, g.tag, g.may_sleep) == (
        "GFP_KERNEL|GFP_DMA", "GFP_KERNEL | GFP_DMA", "kernel_dma", True)
    assert parse_gfp("GFP_ATOMIC").may_sleep is False
    assert parse_gfp("GFP_KERNEL|__GFP_RECLAIMABLE").tag == "kernel_reclaimable"
    for bad in ("GFP_KERNEL|GFP_ATOMIC", "GFP_DMA|GFP_DMA32", "__GFP_ZERO", "", "GFP_KERNEL|",
                "GFP_KERNEL;system()", "GFP_KERNEL|GFP_KERNEL"):
        with pytest.raises(ValueError):
            parse_gfp(bad)


# --- kernel-dependent limits --------------------------------------------------------------------

def test_max_page_order_follows_the_kernel(tmp_path: Path) -> None:
    # 6.1: MAX_ORDER is exclusive; arm64 forces 11 -> orders 0..10.
    assert limits.max_page_order(fake_kernel(tmp_path, "arm64", "6.1.0-56-cloud-arm64",
                                             "CONFIG_ARCH_FORCE_MAX_ORDER=11\n")) == 10
    # 6.4+: inclusive.
    assert limits.max_page_order(fake_kernel(tmp_path, "arm64", "6.12.117+deb12-cloud-arm64",
                                             "CONFIG_ARCH_FORCE_MAX_ORDER=10\n")) == 10
    assert limits.max_page_order(fake_kernel(tmp_path, "x86_64", "6.12.117+deb12-cloud-amd64")) == 10
    sixteen_k = fake_kernel(tmp_path, "arm64", "6.12.117+deb12-arm64-16k",
                            "CONFIG_ARM64_16K_PAGES=y\nCONFIG_ARCH_FORCE_MAX_ORDER=11\n")
    assert limits.page_shift(sixteen_k) == 14
    assert limits.kmalloc_max_cache_size(sixteen_k) == 32768


def test_order_beyond_the_kernels_maximum_is_refused_before_rendering(tmp_path: Path) -> None:
    small = fake_kernel(tmp_path, "arm64", "6.12.1-custom", "CONFIG_ARCH_FORCE_MAX_ORDER=8\n")
    with pytest.raises(ConfigError, match=r"pages: parameter 'max_order': 9 .*0\.\.8"):
        render("pages", {"max_order": 9}, small)
    with pytest.raises(ConfigError, match="page_order"):
        render("mempool", {"page_order": 9}, small)
    render("pages", {"max_order": 8}, small)


def test_slab_no_merge_needs_6_5(tmp_path: Path) -> None:
    old = fake_kernel(tmp_path, "x86_64", "6.1.0-56-cloud-amd64")
    new = fake_kernel(tmp_path, "x86_64", "6.12.117+deb12-cloud-amd64")
    with pytest.raises(ConfigError, match=r"kmem_cache: parameter 'flags': SLAB_NO_MERGE .*6\.5"):
        render("kmem_cache", {"flags": ["SLAB_NO_MERGE"]}, old)
    assert "SLAB_NO_MERGE" in render("kmem_cache", {"flags": ["SLAB_NO_MERGE"]}, new).source


def test_ioremap_windows_follow_each_other_with_their_own_words() -> None:
    p = parse_params("ioremap", ["apis=pci_iomap,ioremap", "size=4096", "offset=8"])
    assert p.windows() == [{"api": "pci_iomap", "offset": 8, "word": 0x6B6D01A5},
                           {"api": "ioremap", "offset": 4104, "word": 0x6B6D02A5}]
    assert p.needs_bytes() == 8200


@pytest.mark.parametrize(("args", "message"), [
    (["size=10"], "multiple of 4"),
    (["offset=2"], "multiple of 4"),
    (["apis=ioremap,ioremap"], "twice"),
    (["apis=mmap"], "ioremap"),
])
def test_ioremap_bad_parameters_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_params("ioremap", args)


def test_dma_buffers_per_api_and_size() -> None:
    p = parse_params("dma", ["sizes=100,5000", "apis=dmam_alloc_coherent", "mask_bits=64"])
    assert p.buffers() == [{"name": "dmam_alloc_coherent_100", "managed": True, "size": 100},
                           {"name": "dmam_alloc_coherent_5000", "managed": True, "size": 5000}]
    assert p.template_context()["mask_bits"] == 64
    for bad, message in ((["mask_bits=16"], "24"), (["sizes=8,8"], "twice"),
                         ([f"sizes={(4 << 20) + 1}"], "4194304")):
        with pytest.raises(ConfigError, match=message):
            parse_params("dma", bad)


def test_highmem_masks_are_for_the_page_allocator_only() -> None:
    """GFP_HIGHUSER and __GFP_HIGHMEM reach alloc_pages(); the slab allocators refuse them
    (mm/slab.h:GFP_SLAB_BUG_MASK), and one mask cannot ask for two zones."""
    p = parse_params("pages", ["gfp=GFP_HIGHUSER,GFP_KERNEL|__GFP_HIGHMEM", "max_order=0"])
    names = [b["name"] for b in p.template_context()["blocks"]]
    assert "alloc_pages_highuser_o0" in names and "get_free_pages_kernel_highmem_o0" in names
    for family, gfp in (("kmalloc", "GFP_KERNEL|__GFP_HIGHMEM"), ("kmalloc", "GFP_HIGHUSER"),
                        ("kmem_cache", "GFP_HIGHUSER")):
        with pytest.raises(ConfigError, match="unknown or unsupported GFP flag"):
            parse_params(family, [f"gfp={gfp}"])
    with pytest.raises(ConfigError, match="two zone modifiers"):
        parse_params("pages", ["gfp=GFP_HIGHUSER|GFP_DMA"])
