"""Rendering: validated values reach the C source; nothing else does."""

from __future__ import annotations

import re

import jinja2
import pytest

from kmodlab.errors import ConfigError
from kmodlab.modules import MEASURED_FAMILIES, parse_params, render
from kmodlab.modules.params import KmallocParams
from kmodlab.modules.render import environment


@pytest.mark.parametrize("family", MEASURED_FAMILIES)   # bugs: tests/unit/test_bugs_family.py
def test_every_family_renders_with_defaults(family: str) -> None:
    r = render(family)
    name = f"kml_{family}"
    assert r.module_name == name
    assert set(r.files) == {f"{name}.c", "kmodlab_ktap.h", "Kbuild"}
    assert r.files["Kbuild"].splitlines()[-1] == f"obj-m := {name}.o"
    src = r.source
    # Generated-file banner names the template; KTAP needs an unprefixed pr_fmt first.
    assert f"modules/{family}/module.c.j2" in src
    assert src.index("#define pr_fmt(fmt) fmt") < src.index("#include")
    assert f'#define KML_FAMILY "{family}"' in src
    assert "module_init(kml_init);" in src and "module_exit(kml_exit);" in src
    assert "{{" not in src and "{%" not in src
    # Kernel style: tabs for indentation, no trailing whitespace.
    assert not re.search(r"^ {8}", src, re.MULTILINE)
    assert not re.search(r"[ \t]+$", src, re.MULTILINE)


def test_kmalloc_source_carries_the_sizes_and_flags() -> None:
    params = parse_params("kmalloc", ["sizes=8,96,160", "gfp=GFP_KERNEL,GFP_ATOMIC",
                                      "krealloc=", "kvmalloc_sizes="])
    src = render("kmalloc", params).source
    for size in (8, 96, 160):
        for tag, expr in (("kernel", "GFP_KERNEL"), ("atomic", "GFP_ATOMIC")):
            assert f'.name = "kmalloc_{size}_{tag}"' in src
            assert f".gfp = {expr}, .size = {size}," in src
    assert src.count('.name = "kmalloc_') == 6
    # Optional sections vanish entirely rather than leaving empty arrays behind.
    assert "kml_krealloc_sizes" not in src and "kml_kvmalloc_sizes" not in src


def test_kzalloc_and_combined_gfp() -> None:
    src = render("kmalloc", {"sizes": [100], "gfp": ["GFP_KERNEL|GFP_DMA"], "zero": True}).source
    assert '.name = "kzalloc_100_kernel_dma", .gfp_name = "GFP_KERNEL|GFP_DMA"' in src
    assert ".gfp = GFP_KERNEL | GFP_DMA, .size = 100, .zero = true" in src


def test_kmem_cache_version_guard_and_values() -> None:
    src = render("kmem_cache", {"name": "ap_obj", "size": 200, "align": 64, "ctor": True,
                                "flags": ["SLAB_ACCOUNT"], "count": 7}).source
    assert '#define KML_CACHE_NAME\t"ap_obj"' in src
    assert "#define KML_OBJ_SIZE\t200" in src and "#define KML_COUNT\t7" in src
    assert "#define KML_FLAGS\t(SLAB_ACCOUNT)" in src
    assert "static void kml_ctor(void *obj)" in src
    # One rendered source serves 6.1 (5-argument form) and 6.12 (struct kmem_cache_args).
    assert "#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)" in src
    assert "kmem_cache_create(KML_CACHE_NAME, KML_OBJ_SIZE, &args, KML_FLAGS)" in src
    no_ctor = render("kmem_cache", {"flags": []}).source
    assert "kml_ctor" not in no_ctor and "#define KML_FLAGS\t(0)" in no_ctor


def test_devres_remove_signature_is_guarded() -> None:
    src = render("devres").source
    assert "static void kml_remove(struct platform_device *pdev)" in src
    assert "static int kml_remove(struct platform_device *pdev)" in src
    assert "KERNEL_VERSION(6, 11, 0)" in src
    assert "KML_PAGE_ORDER 0" in src
    assert "devm_get_free_pages" not in render("devres", {"page_order": None}).source


def test_pages_blocks_cover_every_order() -> None:
    src = render("pages", {"max_order": 2, "gfp": ["GFP_KERNEL|GFP_DMA32"],
                           "apis": ["alloc_pages"]}).source
    for order in range(3):
        assert f'.name = "alloc_pages_kernel_dma32_o{order}"' in src
    assert "_o3" not in src
    assert "#if 2 > KML_MAX_ORDER" in src


def test_vmalloc_callers_are_noinline_non_init() -> None:
    src = render("vmalloc").source
    assert "static noinline void *kml_vmalloc_area(unsigned long size)" in src
    assert ".size = 8388608UL" in src
    assert '.name = "vzalloc_10000"' in src


def test_mempool_and_percpu_values() -> None:
    src = render("mempool", {"kinds": ["page"], "min_nr": 3, "page_order": 2}).source
    assert "#define KML_MIN_NR\t3" in src and "#define KML_PAGE_ORDER\t2" in src
    assert "mempool_alloc_pages" in src and "mempool_alloc_slab" not in src
    src = render("percpu", {"sizes": [12, 48], "increments": 5}).source
    assert "static const size_t kml_sizes[] = { 12, 48 };" in src
    assert "#define KML_INCREMENTS\t5UL" in src


def test_strict_undefined_catches_a_missing_value(monkeypatch: pytest.MonkeyPatch) -> None:
    original = KmallocParams.template_context

    def without_count(self: KmallocParams) -> dict:
        ctx = original(self)
        del ctx["count"]
        return ctx

    monkeypatch.setattr(KmallocParams, "template_context", without_count)
    with pytest.raises(ConfigError, match=r"modules/kmalloc/module.c.j2 uses an undefined value.*count"):
        render("kmalloc")


def test_environment_is_strict_and_unescaped() -> None:
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is False
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()


@pytest.mark.parametrize(
    ("family", "items"),
    [
        ("kmem_cache", ["name={{ 7*7 }}"]),
        ("kmem_cache", ['name=a"b']),
        ("kmalloc", ["gfp=GFP_KERNEL{{ x }}"]),
        ("kmalloc", ["gfp=GFP_KERNEL); evil("]),
    ],
)
def test_user_text_never_reaches_the_source(family: str, items: list[str]) -> None:
    # Values are whitelisted or pattern-checked; template syntax or C is refused, not rendered.
    with pytest.raises(ConfigError):
        parse_params(family, items)


def test_params_of_another_family_are_refused() -> None:
    with pytest.raises(ConfigError, match="family 'kmalloc'"):
        render("pages", parse_params("kmalloc", []))
