"""The Model entry points, parameters and Prediction objects."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import ConfigError
from kmodlab.kernels.kernel import Kernel
from kmodlab.model import Model, ModelError, Prediction
from kmodlab.model.tables import ARCHES, DEBIAN_KCONFIG, SERIES, TABLE


def test_from_params_uses_debian_defaults() -> None:
    m = Model.from_params("arm64", (6, 12))
    assert not m.kconfig_given and m.ncpus == 1 and m.version == (6, 12)
    assert "Debian defaults" in repr(m)
    assert Model.from_params("x86_64", "6.12.117").params.series == "6.12"


def test_for_kernel_reads_the_kernels_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("CONFIG_SLUB=y\nCONFIG_MEMCG=y\n# CONFIG_ZONE_DMA is not set\n"
                      "CONFIG_SLAB_MERGE_DEFAULT=y\n")
    kernel = Kernel(arch="x86_64", series="6.12", flavour="cloud",
                    release="6.12.117+deb12-cloud-amd64", package_version="6.12.117-1~deb12u1",
                    root=tmp_path, image=tmp_path / "img", vmlinux=None, config=config,
                    system_map=tmp_path / "map", modules_dir=tmp_path, headers_dir=tmp_path)
    m = Model.for_kernel(kernel, ncpus=2)
    assert m.kconfig_given and m.ncpus == 2 and m.version == (6, 12)
    caches = m.kmalloc_caches().value
    assert "kmalloc-cg-64" in caches and not any(n.startswith("dma-") for n in caches)


@pytest.mark.parametrize("args, error", [
    (("riscv64", (6, 12)), ConfigError),
    (("x86_64", (5, 15)), ConfigError),       # a series the model was not held against
    (("x86_64", (6, 12), {"CONFIG_KASAN": "y"}), ModelError),
    (("x86_64", (6, 1), {"CONFIG_SLAB": "y"}), ModelError),
])
def test_unsupported_kernels_are_refused(args: tuple, error: type) -> None:
    with pytest.raises(error):
        Model(*args)


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError):
        Model("x86_64", (6, 1), ncpus=0)
    with pytest.raises(ConfigError):
        Model("x86_64", (6, 1), cache_line_size=48)
    m = Model("x86_64", (6, 1))
    with pytest.raises(ModelError):
        m.ksize(-1)
    with pytest.raises(ModelError):
        m.constant("NOPE")
    with pytest.raises(ModelError):
        m.kmalloc_cache("kmalloc-3")


def test_every_table_entry_covers_every_kernel_and_cites_a_source() -> None:
    from kmodlab.model.tables import covered

    highmem = [k for k in covered() if DEBIAN_KCONFIG[k].get("CONFIG_HIGHMEM") == "y"]
    for name, entry in TABLE.items():
        assert entry.source, name
        for arch, series in highmem if name == "LOWMEM_LIMIT" else covered():
            entry.lookup(arch, series)
    assert set(DEBIAN_KCONFIG) == set(covered())
    assert {a for a, _ in covered()} == set(ARCHES) and {s for _, s in covered()} == set(SERIES)


def test_every_prediction_cites_a_rule() -> None:
    m = Model("x86_64", (6, 12), ncpus=2)
    preds = [m.ksize(160), m.kmalloc_cache_for(9000), m.slab_size(100), m.slab_order(104),
             m.objects_per_slab(104), m.vmalloc(10000), m.devm_kmalloc(1), m.alloc_percpu(4),
             m.mempool_create(2, "page"), m.buddy_alloc((1,) * 11, 5), m.get_order(5000),
             *m.constants().values()]
    for p in preds:
        assert isinstance(p, Prediction) and p.rule
        assert p.exact or p.bound is not None or p.reason


def test_prediction_semantics() -> None:
    assert Prediction(5, "r").accepts(5) and not Prediction(5, "r").accepts(6)
    b = Prediction(5, "r", exact=False, bound=(3, 7), reason="noise")
    assert b.accepts(3) and b.accepts(7) and not b.accepts(8)
    assert "bound (3, 7)" in str(b)
    with pytest.raises(ValueError):
        Prediction(5, "r", exact=False)
    with pytest.raises(ValueError):
        Prediction(5, "r", exact=False, bound=(7, 3), reason="x")


@pytest.mark.parametrize("boot, refused", [
    ((), None),
    (("slub_debug=-,kmodlab-no-cache",), None),           # 5.10's series parameter: key only
    (("quiet", "slub_debug=-,a;-,b"), None),
    (("slub_debug",), "slub_debug"),                      # no options: full debugging
    (("slub_debug=FZPU",), "slub_debug=FZPU"),
    (("slab_debug=-;U,kmalloc-64",), "slab_debug=-;U,kmalloc-64"),   # 6.8's name
    (("slub_debug=,kmalloc-64",), "slub_debug=,kmalloc-64"),         # default flags, one cache
])
def test_boot_parameters_that_debug_caches_are_found(boot: tuple[str, ...],
                                                     refused: str | None) -> None:
    from kmodlab.model.params import slab_debug_on_cmdline

    assert slab_debug_on_cmdline(boot) == refused


def test_the_model_refuses_a_kernel_booted_with_slub_debug_flags_but_not_5_10s_key() -> None:
    from kmodlab import registry
    from kmodlab.model.errors import ModelError

    Model("x86_64", (5, 10), boot=registry.series_boot_params("5.10"))
    with pytest.raises(ModelError, match="boots with slub_debug=U"):
        Model("x86_64", (6, 1), boot=("slub_debug=U",))
