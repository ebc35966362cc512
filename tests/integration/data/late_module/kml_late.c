// SPDX-License-Identifier: GPL-2.0
/*
 * A module whose workqueue WARNs delay_ms after it loaded, and which cannot be unloaded (it has
 * no exit function, so rmmod fails): a delayed report from a module its test left loaded.  The
 * report's only link to the module is its guilty frame (kml_late_fn [kml_late]); the task that
 * prints it is a kworker.
 */
#include <linux/module.h>
#include <linux/workqueue.h>
#include <linux/bug.h>

static unsigned int delay_ms = 3000;
module_param(delay_ms, uint, 0444);
MODULE_PARM_DESC(delay_ms, "milliseconds between the load and the WARN");

static void kml_late_fn(struct work_struct *work)
{
	WARN(1, "kmodlab delayed warning\n");
}

static DECLARE_DELAYED_WORK(kml_late_work, kml_late_fn);

static int __init kml_late_init(void)
{
	schedule_delayed_work(&kml_late_work, msecs_to_jiffies(delay_ms));
	return 0;
}

module_init(kml_late_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: a WARN from a workqueue, after the test; no unload");
