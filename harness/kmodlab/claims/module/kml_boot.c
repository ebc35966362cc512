// SPDX-License-Identifier: GPL-2.0
/*
 * kml_boot: what a module can see of boot-time memory.  The boot allocator
 * (memblock; bootmem before 4.20) serves the kernel while it starts, and is
 * done by the time a module loads: the module reports whether its allocator
 * is exported at all, whether the system is still booting, and what the
 * boot-time reservations a driver *can* ask for left behind: the
 * crashkernel= area, which the kernel names in the resource tree
 * (kernel/crash_core.c, "Crash kernel" in /proc/iomem).
 *
 *   boot_allocator  memblock_exported (__symbol_get() of memblock's
 *                   allocator: NULL unless exported), booting
 *                   (system_state before SYSTEM_RUNNING)
 *   reservations    crashkernel_bytes: the "Crash kernel" resources' size
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/ioport.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/string.h>

#define KML_FAMILY "claims"
#include "kmodlab_ktap.h"

/* Sum the sizes of resources named @name anywhere under @parent. */
static resource_size_t kml_named(struct resource *parent, const char *name)
{
	resource_size_t total = 0;
	struct resource *r;

	for (r = parent->child; r; r = r->sibling) {
		if (r->name && !strcmp(r->name, name))
			total += resource_size(r);
		total += kml_named(r, name);
	}
	return total;
}

static int __init kml_init(void)
{
	void *memblock = __symbol_get("memblock_alloc_try_nid");
	struct kml_ktap t;

	if (memblock)
		__symbol_put("memblock_alloc_try_nid");
	kml_ktap_begin(&t, "load", 2);
	kml_diag("boot_allocator", "memblock_exported=%d booting=%d",
		 memblock != NULL, system_state < SYSTEM_RUNNING);
	kml_ktap_result(&t, true, "boot_allocator");
	/* The resource tree is stable after boot; no lock for a read-only walk of it. */
	kml_diag("reservations", "crashkernel_bytes=%llu",
		 (unsigned long long)kml_named(&iomem_resource, "Crash kernel"));
	kml_ktap_result(&t, true, "reservations");
	return 0;
}

static void __exit kml_exit(void)
{
}

module_init(kml_init);
module_exit(kml_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab claims: boot-time memory as a module sees it");
