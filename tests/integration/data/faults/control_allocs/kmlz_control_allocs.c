// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo, control: allocates from every allocator at load and frees it all at unload. */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/gfp.h>

#define N 1000
static void *objs[N];
static void *area;
static struct page *pages;
static struct kmem_cache *cache;
static void *cobj;

static void kmlz_ctor(void *p) { }

static int __init kmlz_init(void)
{
	int i;

	for (i = 0; i < N; i++)
		objs[i] = kmalloc(512, GFP_KERNEL);
	area = vmalloc(1 << 20);
	pages = alloc_pages(GFP_KERNEL, 6);
	cache = kmem_cache_create("kmlz_ctl_cache", 200, 0, 0, kmlz_ctor);
	if (cache)
		cobj = kmem_cache_alloc(cache, GFP_KERNEL);
	return 0;
}

static void __exit kmlz_exit(void)
{
	int i;

	if (cache) {
		kmem_cache_free(cache, cobj);
		kmem_cache_destroy(cache);
	}
	if (pages)
		__free_pages(pages, 6);
	vfree(area);
	for (i = 0; i < N; i++)
		kfree(objs[i]);
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: control, allocates and frees everything");
