// SPDX-License-Identifier: GPL-2.0
/*
 * kml_context: one allocation with a spinlock held, for the claims about
 * which allocations may sleep.  On a kernel with CONFIG_DEBUG_ATOMIC_SLEEP,
 * might_sleep() reports every call that could sleep, whether or not it
 * did (kernel/sched/core.c:__might_resched()); the harness reads that
 * report from the kernel log.  Everything happens at load.
 *
 *   atomic_alloc   alloc=kmalloc|vmalloc, gfp=kernel|atomic (kmalloc only):
 *                  the allocation made between spin_lock() and spin_unlock().
 *
 * __might_resched() reports at most once a second (its prev_jiffy check),
 * so the module first sleeps just over a second: a report from an earlier
 * load cannot hide this one's.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/delay.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#define KML_FAMILY "claims"
#include "kmodlab_ktap.h"

#define KML_SIZE 64

static char *alloc = "kmalloc";
module_param(alloc, charp, 0444);
MODULE_PARM_DESC(alloc, "kmalloc or vmalloc");

static char *gfp = "kernel";
module_param(gfp, charp, 0444);
MODULE_PARM_DESC(gfp, "kernel (GFP_KERNEL) or atomic (GFP_ATOMIC), for kmalloc");

static DEFINE_SPINLOCK(kml_lock);

static int __init kml_init(void)
{
	bool use_vmalloc = !strcmp(alloc, "vmalloc");
	bool atomic = !strcmp(gfp, "atomic");
	struct kml_ktap t;
	void *p;

	if (!use_vmalloc && strcmp(alloc, "kmalloc"))
		return -EINVAL;
	if (!atomic && strcmp(gfp, "kernel"))
		return -EINVAL;
	if (use_vmalloc && atomic)
		return -EINVAL;		/* vmalloc() takes no GFP flags */
	kml_ktap_begin(&t, "load", 1);
	msleep(1100);
	spin_lock(&kml_lock);
	if (use_vmalloc)
		p = vmalloc(KML_SIZE);
	else
		p = kmalloc(KML_SIZE, atomic ? GFP_ATOMIC : GFP_KERNEL);
	spin_unlock(&kml_lock);
	kml_diag("atomic_alloc", "alloc=%s gfp=%s allocated=%d", alloc,
		 use_vmalloc ? "GFP_KERNEL" : atomic ? "GFP_ATOMIC" : "GFP_KERNEL", p != NULL);
	if (use_vmalloc)
		vfree(p);
	else
		kfree(p);
	kml_ktap_result(&t, p != NULL, "atomic_alloc");
	return 0;
}

static void __exit kml_exit(void)
{
}

module_init(kml_init);
module_exit(kml_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab claims probe: an allocation under a spinlock (generated)");
