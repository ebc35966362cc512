// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a NULL pointer dereference at unload. */
#include <linux/module.h>

static int *volatile kmlz_ptr;

static int __init kmlz_init(void)
{
	return 0;
}

static void __exit kmlz_exit(void)
{
	*kmlz_ptr = 42;
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: oops at unload");
