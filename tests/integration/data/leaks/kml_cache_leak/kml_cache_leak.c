// SPDX-License-Identifier: GPL-2.0
/* kmodlab leak tests: creates a slab cache and never destroys it.  Its objects are freed (so
 * nothing else leaks); the constructor keeps SLUB from merging it into an existing cache, so
 * /proc/slabinfo lists it under its own name. */
#include <linux/module.h>
#include <linux/slab.h>

static int count = 10;
module_param(count, int, 0444);
static struct kmem_cache *cache;

static void kml_leak_ctor(void *obj)
{
}

static int __init kml_cache_leak_init(void)
{
	void *objs[64];
	int i, n = min(count, 64);

	cache = kmem_cache_create("kml_leak_cache", 200, 0, 0, kml_leak_ctor);
	if (!cache)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		objs[i] = kmem_cache_alloc(cache, GFP_KERNEL);
	for (i = 0; i < n; i++)
		kmem_cache_free(cache, objs[i]);
	pr_info("kml_cache_leak: created kml_leak_cache\n");
	return 0;
}

static void __exit kml_cache_leak_exit(void)
{
	/* kmem_cache_destroy(cache) is missing: the leak */
}

module_init(kml_cache_leak_init);
module_exit(kml_cache_leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: leaks a slab cache");
