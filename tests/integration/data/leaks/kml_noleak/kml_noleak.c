// SPDX-License-Identifier: GPL-2.0
/* kmodlab leak tests: a module that allocates nothing (the control). */
#include <linux/module.h>

static int __init kml_noleak_init(void)
{
	return 0;
}

static void __exit kml_noleak_exit(void)
{
}

module_init(kml_noleak_init);
module_exit(kml_noleak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: allocates nothing");
