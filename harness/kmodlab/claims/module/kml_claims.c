// SPDX-License-Identifier: GPL-2.0
/*
 * kml_claims: the measurements behind `kmodlab claims` that the allocator
 * families do not make.  Everything happens at load; nothing is held.
 *
 *   timing_<n>         per-call time of kmalloc(n), of vmalloc(n), and of a
 *                      bulk allocation of the same number of order-0 pages
 *                      (what vmalloc does before it maps them:
 *                      mm/vmalloc.c:vm_area_alloc_pages()), allocation only,
 *                      median and minimum over `iterations` calls.  Under
 *                      QEMU/TCG only the ratios mean anything.
 *   reuse_page         a page is filled with 0xa5, freed and allocated again
 *                      without __GFP_ZERO: the per-cpu free list is LIFO, so
 *                      it is normally the same page.  Is the old content
 *                      still there?  (init_on_alloc clears it.)
 *   reuse_kmalloc      the same with a kmalloc(64) object (SLUB's per-cpu
 *                      freelist is LIFO too).
 *   reuse_zeroed_page  the same, re-allocated with get_zeroed_page().
 *
 * Insmod parameters: sizes=<n,...> (up to 8), iterations=<1..1000>.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/gfp.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#define KML_FAMILY "claims"
#include "kmodlab_ktap.h"

#define KML_MAX_SIZES	8
#define KML_MAX_ITER	1000
#define KML_MAX_BYTES	(4UL << 20)

static unsigned long sizes[KML_MAX_SIZES] = { 64, 4096, 16384, 131072, 1048576 };
static int n_sizes = 5;
module_param_array(sizes, ulong, &n_sizes, 0444);
MODULE_PARM_DESC(sizes, "allocation sizes to time, bytes (at most 8, each <= 4 MiB)");

static int iterations = 100;
module_param(iterations, int, 0444);
MODULE_PARM_DESC(iterations, "calls timed per allocator and size (1..1000)");

static u64 kml_ns[KML_MAX_ITER];

static int kml_cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

struct kml_stat {
	u64 median, min;
};

static struct kml_stat kml_summarise(int n)
{
	struct kml_stat s;

	sort(kml_ns, n, sizeof(kml_ns[0]), kml_cmp_u64, NULL);
	s.min = kml_ns[0];
	s.median = kml_ns[n / 2];
	return s;
}

/* Time one kmalloc() per iteration; the free is outside the timed window. */
static bool kml_time_kmalloc(unsigned long size, int n, struct kml_stat *out)
{
	u64 t0;
	void *p;
	int i;

	for (i = 0; i < n; i++) {
		t0 = ktime_get_ns();
		p = kmalloc(size, GFP_KERNEL);
		kml_ns[i] = ktime_get_ns() - t0;
		if (!p)
			return false;
		kfree(p);
	}
	*out = kml_summarise(n);
	return true;
}

static bool kml_time_vmalloc(unsigned long size, int n, struct kml_stat *out)
{
	u64 t0;
	void *p;
	int i;

	for (i = 0; i < n; i++) {
		t0 = ktime_get_ns();
		p = vmalloc(size);
		kml_ns[i] = ktime_get_ns() - t0;
		if (!p)
			return false;
		vfree(p);
	}
	*out = kml_summarise(n);
	return true;
}

/* The page-gathering half of vmalloc: nr order-0 pages, bulk first, then one by one. */
static bool kml_time_pages(unsigned long nr, int n, struct kml_stat *out)
{
	struct page **pages;
	unsigned long got, j;
	bool ok = true;
	u64 t0;
	int i;

	pages = kvmalloc_array(nr, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return false;
	for (i = 0; i < n && ok; i++) {
		memset(pages, 0, nr * sizeof(*pages));
		t0 = ktime_get_ns();
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 14, 0)
		/* include/linux/gfp.h: 6.14 dropped the list variant and renamed
		 * alloc_pages_bulk_array() to alloc_pages_bulk() */
		got = alloc_pages_bulk(GFP_KERNEL, nr, pages);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(5, 13, 0)
		got = alloc_pages_bulk_array(GFP_KERNEL, nr, pages);
#else
		/* mm/page_alloc.c has no bulk allocator before 5.13: 5.10's
		 * __vmalloc_area_node() takes the pages one by one, as here */
		got = 0;
#endif
		while (got < nr) {
			pages[got] = alloc_page(GFP_KERNEL);
			if (!pages[got])
				break;
			got++;
		}
		kml_ns[i] = ktime_get_ns() - t0;
		ok = got == nr;
		for (j = 0; j < got; j++)
			__free_page(pages[j]);
	}
	kvfree(pages);
	if (ok)
		*out = kml_summarise(n);
	return ok;
}

static void kml_run_timing(struct kml_ktap *t, unsigned long size, int n)
{
	unsigned long nr = PAGE_ALIGN(size) >> PAGE_SHIFT;
	struct kml_stat k = { 0 }, v = { 0 }, p = { 0 };
	char name[40];
	bool ok;

	snprintf(name, sizeof(name), "timing_%lu", size);
	if (!size || size > KML_MAX_BYTES) {
		kml_ktap_skip(t, name, "size out of range");
		return;
	}
	ok = kml_time_kmalloc(size, n, &k) && kml_time_vmalloc(size, n, &v) &&
	     kml_time_pages(nr, n, &p);
	kml_diag(name,
		 "size=%lu pages=%lu iterations=%d kmalloc_median_ns=%llu kmalloc_min_ns=%llu vmalloc_median_ns=%llu vmalloc_min_ns=%llu pages_median_ns=%llu pages_min_ns=%llu",
		 size, nr, n, k.median, k.min, v.median, v.min, p.median, p.min);
	kml_ktap_result(t, ok, name);
}

static bool kml_is_filled(const void *p, size_t len)
{
	return !memchr_inv(p, 0xa5, len);
}

static void kml_run_reuse_page(struct kml_ktap *t)
{
	unsigned long a, b;
	bool zeroed, stale;

	a = __get_free_page(GFP_KERNEL);
	if (!a) {
		kml_ktap_result(t, false, "reuse_page");
		return;
	}
	memset((void *)a, 0xa5, PAGE_SIZE);
	free_page(a);
	b = __get_free_page(GFP_KERNEL);
	if (!b) {
		kml_ktap_result(t, false, "reuse_page");
		return;
	}
	zeroed = !memchr_inv((void *)b, 0, PAGE_SIZE);
	stale = kml_is_filled((void *)b, PAGE_SIZE);
	kml_diag("reuse_page", "same_pfn=%d zeroed=%d old_content=%d init_on_alloc=%d",
		 a == b, zeroed, stale, want_init_on_alloc(GFP_KERNEL));
	free_page(b);
	kml_ktap_result(t, true, "reuse_page");
}

static void kml_run_reuse_kmalloc(struct kml_ktap *t)
{
	unsigned long freed;
	bool zeroed, same;
	void *a, *b;

	a = kmalloc(64, GFP_KERNEL);
	if (!a) {
		kml_ktap_result(t, false, "reuse_kmalloc");
		return;
	}
	memset(a, 0xa5, 64);
	/* Only the address is kept: the object itself is never touched after kfree(). */
	freed = (unsigned long)a;
	kfree(a);
	b = kmalloc(64, GFP_KERNEL);
	if (!b) {
		kml_ktap_result(t, false, "reuse_kmalloc");
		return;
	}
	same = freed == (unsigned long)b;
	/*
	 * Without init_on_alloc the old 0xa5 bytes would still be there, except the
	 * 8 bytes where SLUB kept its (hardened) free pointer while the object was free.
	 */
	zeroed = !memchr_inv(b, 0, 64);
	kml_diag("reuse_kmalloc", "same_ptr=%d zeroed=%d ksize=%zu", same, zeroed, ksize(b));
	kfree(b);
	kml_ktap_result(t, true, "reuse_kmalloc");
}

static void kml_run_reuse_zeroed(struct kml_ktap *t)
{
	unsigned long a, b;
	bool zeroed;

	a = __get_free_page(GFP_KERNEL);
	if (!a) {
		kml_ktap_result(t, false, "reuse_zeroed_page");
		return;
	}
	memset((void *)a, 0xa5, PAGE_SIZE);
	free_page(a);
	b = get_zeroed_page(GFP_KERNEL);
	if (!b) {
		kml_ktap_result(t, false, "reuse_zeroed_page");
		return;
	}
	zeroed = !memchr_inv((void *)b, 0, PAGE_SIZE);
	kml_diag("reuse_zeroed_page", "same_pfn=%d zeroed=%d", a == b, zeroed);
	free_page(b);
	kml_ktap_result(t, zeroed, "reuse_zeroed_page");
}

static int __init kml_init(void)
{
	struct kml_ktap t;
	int i, n;

	if (n_sizes < 0 || n_sizes > KML_MAX_SIZES)
		return -EINVAL;
	n = clamp(iterations, 1, KML_MAX_ITER);
	kml_ktap_begin(&t, "load", n_sizes + 3);
	for (i = 0; i < n_sizes; i++)
		kml_run_timing(&t, sizes[i], n);
	kml_run_reuse_page(&t);
	kml_run_reuse_kmalloc(&t);
	kml_run_reuse_zeroed(&t);
	return 0;
}

static void __exit kml_exit(void)
{
}

module_init(kml_init);
module_exit(kml_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab claims probe: allocator timing and re-use (generated)");
