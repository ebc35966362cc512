"""Copy me: kernel-allocator tests with kmodlab's pytest plugin.

    pip install kmodlab        # or: make setup in a checkout
    pytest examples/ --kmodlab-arch arm64 --kmodlab-kernel 6.12

The plugin boots the kernel (once; later tests reuse the warm guest), builds each module for it
and hands tests a `model` of that exact kernel to compare with.
"""

from kmodlab.assertions import (
    assert_clean_unload,
    assert_ktap_passed,
    assert_matches,
    assert_slab_growth,
)

FLAGS = ["SLAB_HWCACHE_ALIGN", "SLAB_NOLEAKTRACE"]   # NOLEAKTRACE keeps the cache unmerged


def test_ksize_of_160_bytes(kmodule, model):
    load = kmodule("kmalloc", sizes=[160], gfp=["GFP_KERNEL"]).load()
    assert_ktap_passed(load)
    assert_matches(model.ksize(160), load.result("kmalloc_160_kernel").values["ksize"], "ksize(160)")


def test_hot_object_cache(kmodule, model):
    module = kmodule("kmem_cache", name="ex_hot", size=100, count=500, flags=FLAGS)
    load = module.load()
    assert_ktap_passed(load)
    cache = load.after.slabinfo["ex_hot"]
    objsize = model.slab_size(100, flags="|".join(FLAGS))
    assert_matches(objsize, cache.objsize, "objsize")
    assert_matches(model.objects_per_slab(objsize.value), cache.objperslab, "objperslab")
    assert_slab_growth(load, "ex_hot", at_least=500)
    assert_clean_unload(module.unload(), module_caches=("ex_hot",))
