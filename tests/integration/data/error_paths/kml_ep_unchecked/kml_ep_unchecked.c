// SPDX-License-Identifier: GPL-2.0
/* kmalloc()'s result used without a check: when it fails, init writes through NULL. */
#include <linux/module.h>
#include <linux/slab.h>

static char *name;

static int __init ep_unchecked_init(void)
{
	name = kmalloc(64, GFP_KERNEL);
	name[0] = 'k';		/* the bug: name may be NULL */
	name[1] = '\0';
	return 0;
}

static void __exit ep_unchecked_exit(void)
{
	kfree(name);
}

module_init(ep_unchecked_init);
module_exit(ep_unchecked_exit);
MODULE_LICENSE("GPL");
