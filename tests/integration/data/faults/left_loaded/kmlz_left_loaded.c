// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a module that cannot be unloaded (it holds a reference to itself). */
#include <linux/module.h>

static int __init kmlz_init(void)
{
	if (!try_module_get(THIS_MODULE))
		return -ENODEV;
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: left loaded");
