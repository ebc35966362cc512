// SPDX-License-Identifier: GPL-2.0
/*
 * A module that floods the kernel log at load: `lines` lines (0: without end, until the
 * command is killed), with a real WARN after `warn_at` of them (-1: none).  Tests that a report
 * deep inside a long log is still seen, and that a flood is told from a hang.
 */
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/bug.h>

static unsigned long lines = 1000;
module_param(lines, ulong, 0444);
MODULE_PARM_DESC(lines, "lines to print (0: without end)");

static long warn_at = -1;
module_param(warn_at, long, 0444);
MODULE_PARM_DESC(warn_at, "WARN after this many lines (-1: never)");

static int __init kml_flood_init(void)
{
	unsigned long i;

	for (i = 0; !lines || i < lines; i++) {
		if (warn_at >= 0 && i == (unsigned long)warn_at)
			WARN(1, "kmodlab warning after %lu lines\n", i);
		pr_info("kml_flood line %lu: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", i);
		cond_resched();
		if (fatal_signal_pending(current))
			return -EINTR;
	}
	return 0;
}

static void __exit kml_flood_exit(void)
{
}

module_init(kml_flood_init);
module_exit(kml_flood_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: a printk flood, optionally with a WARN inside");
