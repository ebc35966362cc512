// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: an init function that fails. */
#include <linux/module.h>

static int __init kmlz_init(void)
{
	return -EINVAL;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: failing init");
