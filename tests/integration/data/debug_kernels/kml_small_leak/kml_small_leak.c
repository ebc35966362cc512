// SPDX-License-Identifier: GPL-2.0
/* Leaks one 120-byte kmalloc object: far below the idle drift /proc can tell apart, so only
 * kmemleak (a pointer-less object, allocated here) names it. */
#include <linux/module.h>
#include <linux/slab.h>

static int __init small_leak_init(void)
{
	char *buf = kmalloc(120, GFP_KERNEL);	/* kmodlab: the bug */

	if (!buf)
		return -ENOMEM;
	memset(buf, 0x5a, 120);
	return 0;	/* buf is never freed, and nothing refers to it any more */
}

static void __exit small_leak_exit(void)
{
}

module_init(small_leak_init);
module_exit(small_leak_exit);
MODULE_LICENSE("GPL");
