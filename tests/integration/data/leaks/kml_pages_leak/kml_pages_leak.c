// SPDX-License-Identifier: GPL-2.0
/* kmodlab leak tests: alloc_pages()s `blocks` blocks of `order` and never frees them. */
#include <linux/module.h>
#include <linux/gfp.h>

static int blocks = 1024;
module_param(blocks, int, 0444);
static int order = 2;
module_param(order, int, 0444);

static int __init kml_pages_leak_init(void)
{
	int i, got = 0;

	for (i = 0; i < blocks; i++)
		if (alloc_pages(GFP_KERNEL, order))
			got++;
	pr_info("kml_pages_leak: leaked %d blocks of order %d\n", got, order);
	return 0;
}

static void __exit kml_pages_leak_exit(void)
{
	/* nothing freed: the leak */
}

module_init(kml_pages_leak_init);
module_exit(kml_pages_leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: leaks pages");
