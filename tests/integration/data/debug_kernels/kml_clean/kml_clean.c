// SPDX-License-Identifier: GPL-2.0
/* Allocates and frees correctly: on a KASAN/kmemleak kernel nothing may be reported. */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

static void *obj;
static void *area;

static int __init clean_init(void)
{
	obj = kmalloc(120, GFP_KERNEL);
	area = vmalloc(3 * PAGE_SIZE);
	if (!obj || !area) {
		kfree(obj);
		vfree(area);
		return -ENOMEM;
	}
	memset(obj, 0, 120);
	memset(area, 0, 3 * PAGE_SIZE);
	return 0;
}

static void __exit clean_exit(void)
{
	vfree(area);
	kfree(obj);
}

module_init(clean_init);
module_exit(clean_exit);
MODULE_LICENSE("GPL");
