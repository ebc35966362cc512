/* SPDX-License-Identifier: GPL-2.0 */
/*
 * KTAP output helpers shared by every module kmodlab generates.
 *
 * Each phase of a module (load, unload, and for devres probe/remove) prints
 * exactly one KTAP document (Documentation/dev-tools/ktap.rst) through
 * printk, so kmodlab's parser and any other KTAP consumer read the same
 * lines:
 *
 *	KTAP version 1
 *	# kmodlab: module=kml_kmalloc family=kmalloc phase=load
 *	1..3
 *	# kmalloc_160_kernel: requested=160 ksize=192 ...
 *	ok 1 kmalloc_160_kernel
 *
 * Diagnostic lines that carry values always start with the name of the test
 * they belong to, so association never depends on line order.  Values are
 * decimal integers, 0x-hex or bare words; one printk record per line, each
 * well under the 1024-byte printk record limit.
 *
 * The including file must define KML_FAMILY and must define pr_fmt(fmt) as
 * plain "fmt" before any kernel header: KTAP lines carry no prefix.
 */
#ifndef KMODLAB_KTAP_H
#define KMODLAB_KTAP_H

#include <linux/printk.h>
#include <linux/types.h>
#include <linux/version.h>

#ifndef KML_FAMILY
#error "define KML_FAMILY before including kmodlab_ktap.h"
#endif

struct kml_ktap {
	int planned;	/* the "1..N" line */
	int ran;	/* results printed so far */
	int failed;	/* "not ok" results */
};

/* Open a document: version line, the kmodlab header diagnostic and the plan. */
static inline void kml_ktap_begin(struct kml_ktap *t, const char *phase,
				  int plan)
{
	t->planned = plan;
	t->ran = 0;
	t->failed = 0;
	pr_info("KTAP version 1\n");
	pr_info("# kmodlab: module=%s family=%s phase=%s\n",
		KBUILD_MODNAME, KML_FAMILY, phase);
	pr_info("1..%d\n", plan);
}

/* Print one result line; returns @ok so callers can chain on it. */
static inline bool kml_ktap_result(struct kml_ktap *t, bool ok,
				   const char *name)
{
	t->ran++;
	if (!ok)
		t->failed++;
	pr_info("%s %d %s\n", ok ? "ok" : "not ok", t->ran, name);
	return ok;
}

/* A test that could not run here (e.g. an offline CPU): ok with a SKIP. */
static inline void kml_ktap_skip(struct kml_ktap *t, const char *name,
				 const char *reason)
{
	t->ran++;
	pr_info("ok %d %s # SKIP %s\n", t->ran, name, reason);
}

/*
 * "# <test>: key=value ..." -- the one format measured values travel in.
 * A macro, not a function, so printf format checking sees the real format.
 */
#define kml_diag(test, fmt, ...) \
	pr_info("# %s: " fmt "\n", (test), ##__VA_ARGS__)

/*
 * "# <test>: object slab <cache> start <addr> pointer offset <n> ..." -- which
 * slab cache @ptr lives in, as the kernel itself names it: kmem_dump_obj()
 * (mm/slab_common.c, exported since 5.12) prints the cache name and the
 * offset of @ptr inside its object; it prints nothing for page-allocator or
 * vmalloc memory, hence " not-slab".  One printk record: pr_cont continues
 * the line this macro opens without a newline.  Needs <linux/slab.h>.
 * The bool-returning kmem_dump_obj() is in every Debian kernel from 6.1.
 * 5.10 has none: there the same line is read from the slab's own struct page
 * (include/linux/mm_types.h page->slab_cache; struct kmem_cache is in
 * include/linux/slub_def.h, public but not included by <linux/slab.h>), and the
 * offset is computed as mm/slub.c:kmem_obj_info() does: the object's index
 * is (ptr - slab base) / s->size, less the left red zone (0 without
 * slub_debug red zones).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
#define kml_diag_slab(test, ptr)					\
	do {								\
		pr_info("# %s: object", (test));			\
		if (!kmem_dump_obj(ptr))				\
			pr_cont(" not-slab\n");				\
	} while (0)
#else
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/kasan.h>		/* slub_def.h uses kasan_reset_tag() */
#include <linux/slub_def.h>
static inline void kml_diag_slab(const char *test, const void *ptr)
{
	struct page *head;
	struct kmem_cache *s;
	unsigned long base;
	long off;

	if (!virt_addr_valid(ptr) || !PageSlab(virt_to_head_page(ptr))) {
		pr_info("# %s: object not-slab\n", test);
		return;
	}
	head = virt_to_head_page(ptr);
	s = head->slab_cache;
	base = (unsigned long)page_address(head);
	off = (long)(((unsigned long)ptr - base) % s->size) - (long)s->red_left_pad;
	if (off < 0)
		pr_info("# %s: object slab %s\n", test, s->name);
	else
		pr_info("# %s: object slab %s pointer offset %ld\n", test, s->name, off);
}
#endif

/*
 * The page-allocator unit an address lives in, with the kernel's own API:
 * its folio (include/linux/mm.h virt_to_folio(), since 5.16) or, before
 * folios, the head page of its compound page (virt_to_head_page()).
 * kml_unit_of() names the slab an object is in (compare two, never
 * dereference), kml_unit_is_slab() says whether it is a slab page at all
 * (not a large kmalloc's pages), kml_unit_order() is its allocation order.
 * Macros, so only a file that uses them needs <linux/mm.h>.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 16, 0)
#define kml_unit_of(addr)	((const void *)virt_to_folio(addr))
#define kml_unit_is_slab(addr)	folio_test_slab(virt_to_folio(addr))
#define kml_unit_order(addr)	folio_order(virt_to_folio(addr))
#else
#define kml_unit_of(addr)	((const void *)virt_to_head_page(addr))
#define kml_unit_is_slab(addr)	PageSlab(virt_to_head_page(addr))
#define kml_unit_order(addr)	compound_order(virt_to_head_page(addr))
#endif

/*
 * kmalloc_size_roundup() (mm/slab_common.c) arrived in 6.1: the size class a
 * kmalloc of @size gets.  Before it, KML_HAVE_SIZE_ROUNDUP is undefined and
 * modules print no roundup value (there is no kernel function to ask).
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 1, 0)
#define KML_HAVE_SIZE_ROUNDUP 1
#endif

/*
 * Largest power of two dividing @addr, capped at PAGE_SIZE: the alignment an
 * allocation actually got, as far as any allocator promises alignment.
 */
#define kml_addr_align(addr) \
	((unsigned long)min_t(unsigned long, \
			      (unsigned long)(addr) & -(unsigned long)(addr), \
			      PAGE_SIZE))

#endif /* KMODLAB_KTAP_H */
