// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "page orders": hold `blocks` buddy blocks big enough for `block_kb`
 * KiB each while the module is loaded, and check that they are aligned.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/module.h>

#define KML_FAMILY "lab_pages"
#include "kmodlab_ktap.h"

#define MAX_BLOCKS 1024

static int block_kb = 100;
module_param(block_kb, int, 0444);
MODULE_PARM_DESC(block_kb, "KiB needed per block");

static int blocks = 4;
module_param(blocks, int, 0444);
MODULE_PARM_DESC(blocks, "number of blocks");

static struct page *pages[MAX_BLOCKS];
static int allocated;
static int order = -1;

static int __init pages_init(void)
{
	long waste_kb = 0;
	struct kml_ktap t;
	int aligned = 0;
	int i;

	if (block_kb < 1 || block_kb > 4096 || blocks < 1 || blocks > MAX_BLOCKS)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 1);
	/* TODO-BEGIN: set `order` to the smallest order whose block holds block_kb KiB, then allocate `blocks` blocks of it into pages[], counting them in `allocated` */
	order = get_order((unsigned long)block_kb * 1024);
	for (i = 0; i < blocks; i++) {
		pages[i] = alloc_pages(GFP_KERNEL, order);
		if (!pages[i])
			break;
		allocated++;
	}
	/* TODO-END */
	/* TODO-BEGIN: count the blocks whose first pfn is a multiple of 2^order in `aligned`; set waste_kb */
	for (i = 0; i < allocated; i++)
		if (IS_ALIGNED(page_to_pfn(pages[i]), 1UL << order))
			aligned++;
	waste_kb = (long)((PAGE_SIZE << order) / 1024) - block_kb;
	/* TODO-END */
	kml_diag("blocks", "block_kb=%d order=%d blocks=%d allocated=%d aligned=%d waste_kb=%ld",
		 block_kb, order, blocks, allocated, aligned, waste_kb);
	kml_ktap_result(&t, allocated == blocks, "blocks");
	return 0;
}

static void __exit pages_exit(void)
{
	struct kml_ktap t;
	int i;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: free every block */
	for (i = 0; i < allocated; i++)
		__free_pages(pages[i], order);
	/* TODO-END */
	kml_ktap_result(&t, true, "freed");
}

module_init(pages_init);
module_exit(pages_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: page orders and buddyinfo");
