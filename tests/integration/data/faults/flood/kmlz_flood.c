// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a printk flood at load. */
#include <linux/module.h>
#include <linux/printk.h>

static int lines = 100000;
module_param(lines, int, 0444);

static int __init kmlz_init(void)
{
	int i;

	for (i = 0; i < lines; i++)
		pr_info("kmlz_flood: line %d\n", i);
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: printk flood at load");
