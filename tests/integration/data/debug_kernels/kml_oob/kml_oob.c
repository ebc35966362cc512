// SPDX-License-Identifier: GPL-2.0
/* Writes one byte past a 120-byte kmalloc buffer.  The byte lies in kmalloc-128's slack, so
 * only a detector that knows the requested size (generic KASAN: mm/kasan/generic.c poisons
 * [size, object end)) can see it; a stock kernel is silent. */
#include <linux/module.h>
#include <linux/slab.h>

static int index = 120;
module_param(index, int, 0444);

static int __init oob_init(void)
{
	char *buf = kmalloc(120, GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	OPTIMIZER_HIDE_VAR(buf);
	buf[index] = 'x';	/* kmodlab: the bug */
	kfree(buf);
	return 0;
}

static void __exit oob_exit(void)
{
}

module_init(oob_init);
module_exit(oob_exit);
MODULE_LICENSE("GPL");
