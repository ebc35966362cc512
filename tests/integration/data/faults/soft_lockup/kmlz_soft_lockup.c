// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a soft lockup (30 s of busy waiting with preemption off) at load. */
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/preempt.h>

static int seconds = 30;
module_param(seconds, int, 0444);

static int __init kmlz_init(void)
{
	int ms;

	preempt_disable();
	for (ms = 0; ms < seconds * 1000; ms++)
		mdelay(1);
	preempt_enable();
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: soft lockup at load");
