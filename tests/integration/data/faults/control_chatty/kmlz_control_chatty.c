// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo, control: correct but chatty (a student who prints everything). */
#include <linux/module.h>
#include <linux/printk.h>

static int lines = 400;
module_param(lines, int, 0444);

static int __init kmlz_init(void)
{
	int i;

	for (i = 0; i < lines; i++)
		pr_info("kmlz_chatty: step %d of %d: all is well, nothing to report\n", i, lines);
	pr_info("KTAP version 1\n");
	pr_info("1..2\n");
	pr_info("ok 1 kmlz_chatty_allocates\n");
	pr_info("ok 2 kmlz_chatty_talks\n");
	return 0;
}

static void __exit kmlz_exit(void)
{
	int i;

	for (i = 0; i < lines; i++)
		pr_info("kmlz_chatty: goodbye %d of %d\n", i, lines);
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: control, correct but chatty");
