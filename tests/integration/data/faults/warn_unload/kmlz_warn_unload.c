// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a WARNING at unload. */
#include <linux/module.h>
#include <linux/bug.h>

static int trigger = 1;
module_param(trigger, int, 0444);

static int __init kmlz_init(void)
{
	return 0;
}

static void __exit kmlz_exit(void)
{
	WARN(trigger, "kmlz_warn_unload: deliberate warning at unload\n");
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: WARN at unload");
