// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "unwinding on failure": set up a table of records and a vmalloc'ed
 * ring; when any allocation fails, undo exactly what was done, in reverse
 * order, and return -ENOMEM.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#define KML_FAMILY "lab_error_paths"
#include "kmodlab_ktap.h"

#define MAX_RECS 64

static int nrec = 4;
module_param(nrec, int, 0444);
MODULE_PARM_DESC(nrec, "records to allocate");

static int rec_size = 96;
module_param(rec_size, int, 0444);
MODULE_PARM_DESC(rec_size, "bytes per record");

static int ring_kb = 8;
module_param(ring_kb, int, 0444);
MODULE_PARM_DESC(ring_kb, "KiB of ring buffer");

static void **recs;
static void *ring;

/*
 * Allocate, in this order: `recs` (an array of nrec pointers, zeroed), nrec
 * records of rec_size bytes (kmalloc) into it, and `ring` (ring_kb KiB of
 * vmalloc).  On any failure free what was allocated, newest first, leave
 * the pointers NULL and return -ENOMEM.
 */
static noinline int unwind_setup(void)
{
	/* TODO-BEGIN: allocate recs, the records and the ring; unwind on failure */
	int i;

	recs = kcalloc(nrec, sizeof(*recs), GFP_KERNEL);
	if (!recs)
		return -ENOMEM;
	for (i = 0; i < nrec; i++) {
		recs[i] = kmalloc(rec_size, GFP_KERNEL);
		if (!recs[i])
			goto out_recs;
	}
	ring = vmalloc(ring_kb * 1024);
	if (!ring)
		goto out_recs;
	return 0;

out_recs:
	while (i--)
		kfree(recs[i]);
	kfree(recs);
	recs = NULL;
	return -ENOMEM;
	/* TODO-END: return 0; */
}

/* Free everything unwind_setup() allocated. */
static noinline void unwind_teardown(void)
{
	/* TODO-BEGIN: free the ring, every record, then recs */
	int i;

	vfree(ring);
	for (i = 0; recs && i < nrec; i++)
		kfree(recs[i]);
	kfree(recs);
	/* TODO-END */
}

static int __init unwind_init(void)
{
	struct kml_ktap t;
	int err;

	if (nrec < 1 || nrec > MAX_RECS || rec_size < 8 || ring_kb < 1)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 1);
	err = unwind_setup();
	kml_diag("setup", "err=%d recs=%d ring=%d", err, recs != NULL, ring != NULL);
	kml_ktap_result(&t, !err && recs && ring, "setup");
	return err;
}

static void __exit unwind_exit(void)
{
	unwind_teardown();
}

module_init(unwind_init);
module_exit(unwind_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: unwinding on allocation failure");
