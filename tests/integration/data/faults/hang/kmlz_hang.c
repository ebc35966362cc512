// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a load that never finishes. */
#include <linux/module.h>
#include <linux/delay.h>

static int __init kmlz_init(void)
{
	for (;;)
		msleep(1000);
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: hang at load");
