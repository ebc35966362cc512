// SPDX-License-Identifier: GPL-2.0
/*
 * kml_bigalloc: a large physically contiguous buffer against vmalloc() of the
 * same size, in memory the harness fragmented first (kmodlab's kml_fragment
 * tool: anonymous pages with every other one given back, and the large
 * blocks left taken by transparent huge pages).  At load:
 *
 *   blocks      node 0's free blocks (what /proc/buddyinfo shows) just before
 *               the attempt: free_pages, large_blocks (of `order` or more),
 *               largest (the largest order with a free block)
 *   contiguous  __get_free_pages(GFP_NOWAIT | __GFP_NOWARN, order): a block
 *               of 2^order pages, without reclaim or compaction
 *   vmalloc     vmalloc() of the same size, every page written
 *
 * Everything is freed before init returns.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#define KML_FAMILY "claims"
#include "kmodlab_ktap.h"

#ifdef NR_PAGE_ORDERS			/* 6.8+: MAX_PAGE_ORDER is inclusive */
#define KML_ORDERS NR_PAGE_ORDERS
#else					/* 5.10, 6.1: MAX_ORDER is the count */
#define KML_ORDERS MAX_ORDER
#endif

static int order = 9;
module_param(order, int, 0444);
MODULE_PARM_DESC(order, "order of the contiguous block (and size of the vmalloc)");

static void kml_count(unsigned long *free, unsigned long *large, int *largest)
{
	int z, o;

	*free = 0;
	*large = 0;
	*largest = -1;
	for (z = 0; z < MAX_NR_ZONES; z++) {
		struct zone *zone = &NODE_DATA(0)->node_zones[z];

		if (!populated_zone(zone))
			continue;
		for (o = 0; o < KML_ORDERS; o++) {
			unsigned long n = READ_ONCE(zone->free_area[o].nr_free);

			*free += n << o;
			if (o >= order)
				*large += n;
			if (n && o > *largest)
				*largest = o;
		}
	}
}

static int __init kml_init(void)
{
	unsigned long free, large, block, size;
	int largest, vmalloc_ok = 0;
	struct kml_ktap t;
	void *buf;

	if (order < 1 || order >= KML_ORDERS)
		return -EINVAL;
	size = PAGE_SIZE << order;
	kml_ktap_begin(&t, "load", 3);
	kml_count(&free, &large, &largest);
	block = __get_free_pages(GFP_NOWAIT | __GFP_NOWARN, order);
	buf = vmalloc(size);
	if (buf) {
		memset(buf, 0x5a, size);
		vmalloc_ok = 1;
		vfree(buf);
	}
	if (block)
		free_pages(block, order);

	kml_diag("blocks", "free_pages=%lu large_blocks=%lu largest=%d order=%d",
		 free, large, largest, order);
	kml_ktap_result(&t, true, "blocks");
	kml_diag("contiguous", "ok=%d size=%lu", block != 0, size);
	kml_ktap_result(&t, true, "contiguous");
	kml_diag("vmalloc", "ok=%d size=%lu", vmalloc_ok, size);
	kml_ktap_result(&t, vmalloc_ok, "vmalloc");
	return 0;
}

static void __exit kml_exit(void)
{
}

module_init(kml_init);
module_exit(kml_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab claims: a large contiguous buffer in fragmented memory");
