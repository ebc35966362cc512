// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a module that does not compile. */
#include <linux/module.h>

static int __init kmlz_init(void)
{
	return kmlz_undeclared_identifier;
}

module_init(kmlz_init);
MODULE_LICENSE("GPL");
