// SPDX-License-Identifier: GPL-2.0
/*
 * Copies an object of a cache created without a usercopy region "to user space", the way a
 * driver's read() does (copy_to_user() starts with check_object_size()).  With
 * CONFIG_HARDENED_USERCOPY the kernel BUGs in mm/usercopy.c usercopy_abort().  The constructor
 * keeps SLUB from merging the cache into kmalloc-64 (whose objects are whitelisted whole).
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/thread_info.h>

static struct kmem_cache *kml_uc_cache;

/* Not a constant: check_object_size() skips sizes the compiler knows (include/linux/ucopysize.h,
 * include/linux/thread_info.h before 6.15). */
static int copy_size = 64;
module_param(copy_size, int, 0444);

static void kml_uc_ctor(void *obj)
{
}

static int __init kml_uc_init(void)
{
	void *obj;

	kml_uc_cache = kmem_cache_create("kml_uc", 64, 0, 0, kml_uc_ctor);
	if (!kml_uc_cache)
		return -ENOMEM;
	obj = kmem_cache_alloc(kml_uc_cache, GFP_KERNEL);
	if (!obj) {
		kmem_cache_destroy(kml_uc_cache);
		return -ENOMEM;
	}
	check_object_size(obj, copy_size, true);	/* what copy_to_user(ubuf, obj, n) checks */
	kmem_cache_free(kml_uc_cache, obj);
	return 0;
}

static void __exit kml_uc_exit(void)
{
	kmem_cache_destroy(kml_uc_cache);
}

module_init(kml_uc_init);
module_exit(kml_uc_exit);
MODULE_LICENSE("GPL");
