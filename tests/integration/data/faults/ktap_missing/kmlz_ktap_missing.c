// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a KTAP document with missing results. */
#include <linux/module.h>
#include <linux/printk.h>

static int __init kmlz_init(void)
{
	pr_info("KTAP version 1\n");
	pr_info("1..3\n");
	pr_info("ok 1 kmlz_ktap_only\n");
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: missing KTAP results");
