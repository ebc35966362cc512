// SPDX-License-Identifier: GPL-2.0
/*
 * kml_pressure: GFP masks under memory pressure.  The harness first fills
 * the page cache with clean, reclaimable pages (reading a brd RAM disk
 * through its block device); then, at load:
 *
 *   fill_nowait   single pages with GFP_NOWAIT|__GFP_NOWARN until one fails:
 *                 no direct reclaim, no reserves (the min watermark stops it)
 *   take_atomic   then GFP_ATOMIC|__GFP_NOWARN until one fails: the same
 *                 memory, below the min watermark (__GFP_HIGH and the
 *                 atomic context's reserves)
 *   warn          one GFP_NOWAIT without __GFP_NOWARN (which GFP_NOWAIT
 *                 itself carries from 6.12 on): it fails, and the allocator
 *                 says so once (mm/page_alloc.c:warn_alloc())
 *   reclaim       GFP_KERNEL|__GFP_RETRY_MAYFAIL|__GFP_NOWARN up to
 *                 `reclaim` pages: direct reclaim frees page cache for them
 *                 (__GFP_RETRY_MAYFAIL: no OOM killer)
 *   noretry       then GFP_KERNEL|__GFP_NORETRY|__GFP_NOWARN up to `reclaim`
 *                 pages, with free memory still at the watermark: each
 *                 failed fast path is followed by one direct reclaim round
 *                 before __GFP_NORETRY may give up
 *                 (mm/page_alloc.c:__alloc_pages_slowpath())
 *   nofail        one GFP_KERNEL|__GFP_NOFAIL page
 *
 * Each direct-reclaim phase reports the PGSTEAL_DIRECT event count it added
 * (pages the allocating task reclaimed itself, not kswapd: mm/vmscan.c).
 *   zoneN         per populated zone of node 0: its min watermark (without
 *                 the boost), the lowmem reserve GFP_KERNEL's highest zone
 *                 imposes on it, and its free pages and watermark boost
 *                 when each phase stopped (steal_suitable_fallback() boosts
 *                 the watermarks; kswapd, which would reset them, cannot run)
 *
 * The first three phases run with preemption disabled: the atomic context
 * GFP_ATOMIC is for, and on one CPU it keeps kswapd (woken by both masks)
 * from reclaiming under them.  Every page is freed before init returns.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/gfp.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/vmstat.h>

#define KML_FAMILY "claims"
#include "kmodlab_ktap.h"

static unsigned long reclaim = 2048;
module_param(reclaim, ulong, 0444);
MODULE_PARM_DESC(reclaim, "pages GFP_KERNEL|__GFP_RETRY_MAYFAIL takes after the others failed");

static LIST_HEAD(kml_pages);
/* [zone][0: where nowait stopped, 1: where atomic stopped] */
static unsigned long kml_free_at[MAX_NR_ZONES][2];
static unsigned long kml_boost_at[MAX_NR_ZONES][2];
static unsigned long kml_cma_at[MAX_NR_ZONES][2];	/* free CMA pages: unusable for these */

#ifdef CONFIG_VM_EVENT_COUNTERS
static unsigned long kml_events[NR_VM_EVENT_ITEMS];

/* Pages reclaimed by allocating tasks themselves so far (may sleep: cpus_read_lock) */
static long kml_direct_steals(void)
{
	all_vm_events(kml_events);
	return kml_events[PGSTEAL_DIRECT];
}
#else
static long kml_direct_steals(void)
{
	return -1;	/* unknown: no event counters */
}
#endif

static unsigned long kml_take(gfp_t gfp, unsigned long limit)
{
	unsigned long n = 0;
	struct page *page;

	while (n < limit && (page = alloc_page(gfp)) != NULL) {
		list_add(&page->lru, &kml_pages);
		n++;
	}
	return n;
}

static void kml_free_all(void)
{
	struct page *page, *next;

	list_for_each_entry_safe(page, next, &kml_pages, lru) {
		list_del(&page->lru);
		__free_page(page);
	}
}

static void kml_zone_free(int slot)
{
	int i;

	for (i = 0; i < MAX_NR_ZONES; i++) {
		struct zone *z = &NODE_DATA(0)->node_zones[i];

		kml_free_at[i][slot] = zone_page_state(z, NR_FREE_PAGES);
		kml_boost_at[i][slot] = z->watermark_boost;
		kml_cma_at[i][slot] = zone_page_state(z, NR_FREE_CMA_PAGES);
	}
}

static unsigned long kml_file_pages(void)
{
	return global_node_page_state(NR_FILE_PAGES);
}

static int __init kml_init(void)
{
	unsigned long nowait, atomic, kernel, noretry, file_before, file_mid, file_after;
	unsigned long file_noretry;
	long steals_before, steals_reclaim, steals_noretry;
	enum zone_type high = gfp_zone(GFP_KERNEL);
	unsigned long limit = totalram_pages();
	struct page *warned, *nofail;
	struct kml_ktap t;
	int i, zones = 0;

	for (i = 0; i < MAX_NR_ZONES; i++)
		zones += populated_zone(&NODE_DATA(0)->node_zones[i]);
	kml_ktap_begin(&t, "load", 6 + zones);
	file_before = kml_file_pages();

	preempt_disable();
	nowait = kml_take(GFP_NOWAIT | __GFP_NOWARN, limit);
	kml_zone_free(0);
	file_mid = kml_file_pages();
	atomic = kml_take(GFP_ATOMIC | __GFP_NOWARN, limit);
	kml_zone_free(1);
	warned = alloc_page(GFP_NOWAIT & ~__GFP_NOWARN);
	preempt_enable();
	if (warned)
		list_add(&warned->lru, &kml_pages);

	steals_before = kml_direct_steals();
	kernel = kml_take(GFP_KERNEL | __GFP_RETRY_MAYFAIL | __GFP_NOWARN, reclaim);
	file_after = kml_file_pages();
	steals_reclaim = kml_direct_steals();
	noretry = kml_take(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN, reclaim);
	file_noretry = kml_file_pages();
	steals_noretry = kml_direct_steals();
	/*
	 * Only while reclaim still works: with nothing left to reclaim, __GFP_NOFAIL
	 * goes to the OOM killer (mm/page_alloc.c:__alloc_pages_may_oom()), which
	 * would kill the harness's shell in the guest.
	 */
	nofail = kernel == reclaim ? alloc_page(GFP_KERNEL | __GFP_NOFAIL) : NULL;
	if (nofail)
		list_add(&nofail->lru, &kml_pages);
	kml_free_all();

	kml_diag("fill_nowait", "pages=%lu file_pages_before=%lu file_pages=%lu",
		 nowait, file_before, file_mid);
	kml_ktap_result(&t, nowait < limit, "fill_nowait");
	kml_diag("take_atomic", "pages=%lu", atomic);
	kml_ktap_result(&t, true, "take_atomic");
	kml_diag("warn", "failed=%d", warned == NULL);
	kml_ktap_result(&t, true, "warn");
	kml_diag("reclaim", "pages=%lu asked=%lu file_pages=%lu direct_steals=%ld", kernel,
		 reclaim, file_after, steals_before < 0 ? -1 : steals_reclaim - steals_before);
	kml_ktap_result(&t, true, "reclaim");
	kml_diag("noretry", "pages=%lu asked=%lu file_pages_before=%lu file_pages=%lu "
		 "direct_steals=%ld", noretry, reclaim, file_after, file_noretry,
		 steals_before < 0 ? -1 : steals_noretry - steals_reclaim);
	kml_ktap_result(&t, true, "noretry");
	kml_diag("nofail", "tried=%d got=%d", kernel == reclaim, nofail != NULL);
	kml_ktap_result(&t, kernel != reclaim || nofail != NULL, "nofail");
	for (i = 0; i < MAX_NR_ZONES; i++) {
		struct zone *z = &NODE_DATA(0)->node_zones[i];
		char test[16];

		if (!populated_zone(z))
			continue;
		snprintf(test, sizeof(test), "zone%d", i);
		kml_diag(test, "name=%s min=%lu lowmem_reserve=%ld managed=%lu free_nowait=%lu "
			 "boost_nowait=%lu cma_nowait=%lu free_atomic=%lu boost_atomic=%lu "
			 "cma_atomic=%lu", z->name, z->_watermark[WMARK_MIN],
			 (long)z->lowmem_reserve[high], zone_managed_pages(z), kml_free_at[i][0],
			 kml_boost_at[i][0], kml_cma_at[i][0], kml_free_at[i][1],
			 kml_boost_at[i][1], kml_cma_at[i][1]);
		kml_ktap_result(&t, true, test);
	}
	return 0;
}

static void __exit kml_exit(void)
{
}

module_init(kml_init);
module_exit(kml_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab claims: GFP masks under memory pressure");
