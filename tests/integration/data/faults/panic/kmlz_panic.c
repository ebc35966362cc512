// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a panic at load. */
#include <linux/module.h>
#include <linux/panic.h>

static int __init kmlz_init(void)
{
	panic("kmlz_panic: deliberate panic from the kmodlab fault zoo");
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: panic at load");
