// SPDX-License-Identifier: GPL-2.0
/* kmodlab leak tests: kmalloc()s `count` objects of `size` bytes and never frees them. */
#include <linux/module.h>
#include <linux/slab.h>

static int count = 1000;
module_param(count, int, 0444);
static int size = 4096;
module_param(size, int, 0444);

static int __init kml_kmalloc_leak_init(void)
{
	int i, got = 0;

	for (i = 0; i < count; i++)
		if (kmalloc(size, GFP_KERNEL))
			got++;
	pr_info("kml_kmalloc_leak: leaked %d objects of %d bytes\n", got, size);
	return 0;
}

static void __exit kml_kmalloc_leak_exit(void)
{
	/* nothing freed: the leak */
}

module_init(kml_kmalloc_leak_init);
module_exit(kml_kmalloc_leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: leaks kmalloc objects");
