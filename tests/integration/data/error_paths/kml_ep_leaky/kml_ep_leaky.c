// SPDX-License-Identifier: GPL-2.0
/* The second allocation's error path forgets the first: a vmalloc area is left behind. */
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

static void *table;
static void *header;

static int __init ep_leaky_init(void)
{
	table = vmalloc(64 * 1024);
	if (!table)
		return -ENOMEM;
	header = kmalloc(1024, GFP_KERNEL);
	if (!header)
		return -ENOMEM;	/* the bug: table is never freed */
	return 0;
}

static void __exit ep_leaky_exit(void)
{
	kfree(header);
	vfree(table);
}

module_init(ep_leaky_init);
module_exit(ep_leaky_exit);
MODULE_LICENSE("GPL");
