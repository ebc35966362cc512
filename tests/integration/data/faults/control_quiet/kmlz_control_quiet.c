// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo, control: a module that does nothing wrong. */
#include <linux/module.h>

static int __init kmlz_init(void)
{
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: control, quiet");
