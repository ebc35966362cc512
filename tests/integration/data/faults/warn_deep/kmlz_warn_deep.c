// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a WARN buried under more log than the ring buffer holds. */
#include <linux/module.h>
#include <linux/bug.h>
#include <linux/printk.h>

static int lines = 8000;
module_param(lines, int, 0444);

static int __init kmlz_init(void)
{
	int i;

	WARN(1, "kmlz_warn_deep: deliberate warning, about to be buried\n");
	for (i = 0; i < lines; i++)
		pr_info("kmlz_warn_deep: burying the warning under line %d of %d, padding padding\n",
			i, lines);
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: WARN deep in a big log");
