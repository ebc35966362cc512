// SPDX-License-Identifier: GPL-2.0
/*
 * Every allocation checked, every error path unwinds what came before:
 * `kmodlab faults` must report each site handled.
 */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

static struct kmem_cache *cache;
static void *buf, *obj, *area;

static int __init ep_ok_init(void)
{
	buf = kmalloc(200, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	cache = kmem_cache_create("kml_ep_ok", 96, 0, 0, NULL);
	if (!cache)
		goto free_buf;
	obj = kmem_cache_alloc(cache, GFP_KERNEL);
	if (!obj)
		goto destroy;
	area = vmalloc(4 * PAGE_SIZE);
	if (!area)
		goto free_obj;
	return 0;

free_obj:
	kmem_cache_free(cache, obj);
destroy:
	kmem_cache_destroy(cache);
free_buf:
	kfree(buf);
	return -ENOMEM;
}

static void __exit ep_ok_exit(void)
{
	vfree(area);
	kmem_cache_free(cache, obj);
	kmem_cache_destroy(cache);
	kfree(buf);
}

module_init(ep_ok_init);
module_exit(ep_ok_exit);
MODULE_LICENSE("GPL");
