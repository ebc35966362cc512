// SPDX-License-Identifier: GPL-2.0
/* kmodlab fault zoo: a WARN from a workqueue, after insmod has returned. */
#include <linux/module.h>
#include <linux/bug.h>
#include <linux/workqueue.h>

static int delay_ms = 1000;
module_param(delay_ms, int, 0444);

static void kmlz_late(struct work_struct *work)
{
	WARN(1, "kmlz_warn_delayed: deliberate warning from a workqueue\n");
}

static DECLARE_DELAYED_WORK(kmlz_work, kmlz_late);

static int __init kmlz_init(void)
{
	schedule_delayed_work(&kmlz_work, msecs_to_jiffies(delay_ms));
	return 0;
}

static void __exit kmlz_exit(void)
{
	cancel_delayed_work_sync(&kmlz_work);
}

module_init(kmlz_init);
module_exit(kmlz_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab fault zoo: delayed WARN from a workqueue");
