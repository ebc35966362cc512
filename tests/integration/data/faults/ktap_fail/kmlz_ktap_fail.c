// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a KTAP document with a failure (nothing else wrong). */
#include <linux/module.h>
#include <linux/printk.h>

static int __init kmlz_init(void)
{
	pr_info("KTAP version 1\n");
	pr_info("1..2\n");
	pr_info("ok 1 kmlz_ktap_first\n");
	pr_info("not ok 2 kmlz_ktap_second\n");
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: a failing KTAP result");
