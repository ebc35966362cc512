// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "high memory": hold `npages` pages that may come from ZONE_HIGHMEM,
 * find out which of them have no kernel address, write them through a
 * temporary mapping, and see where __get_free_pages() takes its page from.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/module.h>
#include <linux/string.h>

#define KML_FAMILY "lab_highmem"
#include "kmodlab_ktap.h"

#define MAX_PAGES 4096

static int npages = 64;
module_param(npages, int, 0444);
MODULE_PARM_DESC(npages, "pages to allocate");

static struct page *pages[MAX_PAGES];
static int allocated;
static unsigned long gfp_page;

static int __init highmem_init(void)
{
	int highmem = 0, no_address = 0, written = 0, i;
	struct kml_ktap t;

	if (npages < 1 || npages > MAX_PAGES)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 2);
	/* TODO-BEGIN: allocate `npages` pages with alloc_pages(GFP_HIGHUSER, 0) into pages[], counting them in `allocated` */
	for (i = 0; i < npages; i++) {
		pages[i] = alloc_pages(GFP_HIGHUSER, 0);
		if (!pages[i])
			break;
		allocated++;
	}
	/* TODO-END */
	/* TODO-BEGIN: count high-memory pages (PageHighMem) in `highmem` and pages without a kernel address (page_address() == NULL) in `no_address`; fill each page with 0x5a through kmap_local_page()/kunmap_local(), counting them in `written` */
	for (i = 0; i < allocated; i++) {
		void *v;

		if (PageHighMem(pages[i]))
			highmem++;
		if (!page_address(pages[i]))
			no_address++;
		v = kmap_local_page(pages[i]);
		memset(v, 0x5a, PAGE_SIZE);
		kunmap_local(v);
		written++;
	}
	/* TODO-END */
	kml_diag("pages", "npages=%d allocated=%d highmem=%d no_address=%d written=%d",
		 npages, allocated, highmem, no_address, written);
	kml_ktap_result(&t, allocated == npages, "pages");

	/* TODO-BEGIN: take one page with __get_free_pages(GFP_HIGHUSER, 0) into gfp_page */
	gfp_page = __get_free_pages(GFP_HIGHUSER, 0);
	/* TODO-END */
	kml_diag("gfp", "allocated=%d zone=%s", gfp_page != 0,
		 gfp_page ? page_zone(virt_to_page((void *)gfp_page))->name : "none");
	kml_ktap_result(&t, gfp_page != 0, "gfp");
	return 0;
}

static void __exit highmem_exit(void)
{
	struct kml_ktap t;
	int i;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: free every page, and gfp_page */
	/* leak: the pages stay allocated */
	if (gfp_page)
		free_page(gfp_page);
	/* TODO-END */
	kml_ktap_result(&t, true, "freed");
}

module_init(highmem_init);
module_exit(highmem_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("student (leaking): high memory");
