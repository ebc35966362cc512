// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: an RCU stall (a 30 s read-side critical section) at load. */
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/rcupdate.h>

static int seconds = 30;
module_param(seconds, int, 0444);

static int __init kmlz_init(void)
{
	int ms;

	rcu_read_lock();
	for (ms = 0; ms < seconds * 1000; ms++)
		mdelay(1);
	rcu_read_unlock();
	return 0;
}

static void __exit kmlz_exit(void)
{
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: RCU stall at load");
