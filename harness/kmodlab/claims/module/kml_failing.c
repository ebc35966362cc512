// SPDX-License-Identifier: GPL-2.0
/*
 * kml_failing: what callers see when the slab allocator really fails, for the
 * claims "kmalloc can return NULL" and "a mempool hands out its reserve when
 * the allocator fails".  Needs a kernel with CONFIG_FAILSLAB, and failslab
 * armed by the harness with probability 100 and task-filter Y: then every slab
 * allocation of a task whose make_it_fail is set fails (lib/fault-inject.c:
 * should_fail_ex(), fail_task()).  The module sets make_it_fail on its own
 * task only around the measurement, so the module loader's allocations and
 * the pool's preallocation succeed.  Everything happens at load.
 *
 *   failing_kmalloc   kmalloc(64, GFP_KERNEL) while failing: returned NULL?
 *   failing_mempool   mempool_alloc(GFP_NOWAIT) of a 4-element kmalloc pool,
 *                     8 times while failing: how many served (the reserve),
 *                     curr_nr after.  GFP_NOWAIT: with a sleeping mask and an
 *                     empty reserve mempool_alloc() would wait for a free
 *                     (mm/mempool.c:mempool_alloc()), here forever.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>

#define KML_FAMILY "claims"
#include "kmodlab_ktap.h"

#define KML_MIN_NR	4
#define KML_TRIES	8
#define KML_SIZE	64

static int __init kml_init(void)
{
	void *got[KML_TRIES] = { NULL };
	struct kml_ktap t;
	mempool_t *pool;
	int served = 0, i;
	void *p;

	kml_ktap_begin(&t, "load", 2);
	pool = mempool_create_kmalloc_pool(KML_MIN_NR, KML_SIZE);
	if (!pool) {
		kml_ktap_result(&t, false, "failing_kmalloc");
		kml_ktap_result(&t, false, "failing_mempool");
		return 0;
	}
	current->make_it_fail = 1;
	p = kmalloc(KML_SIZE, GFP_KERNEL);
	for (i = 0; i < KML_TRIES; i++) {
		got[i] = mempool_alloc(pool, GFP_NOWAIT);
		served += got[i] != NULL;
	}
	current->make_it_fail = 0;
	kml_diag("failing_kmalloc", "size=%d returned_null=%d", KML_SIZE, p == NULL);
	kml_ktap_result(&t, true, "failing_kmalloc");
	kml_diag("failing_mempool", "min_nr=%d tries=%d served=%d curr_nr_after=%d",
		 KML_MIN_NR, KML_TRIES, served, pool->curr_nr);
	kml_ktap_result(&t, true, "failing_mempool");
	kfree(p);
	for (i = 0; i < KML_TRIES; i++)
		if (got[i])
			mempool_free(got[i], pool);
	mempool_destroy(pool);
	return 0;
}

static void __exit kml_exit(void)
{
}

module_init(kml_init);
module_exit(kml_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab claims probe: allocations under failslab (generated)");
