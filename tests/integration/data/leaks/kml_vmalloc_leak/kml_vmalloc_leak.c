// SPDX-License-Identifier: GPL-2.0
/* kmodlab leak tests: vmalloc()s `size_kb` KiB and never vfree()s it.  By default the allocation
 * is made in a function that is not __init, so /proc/vmallocinfo names it while the module is
 * loaded; with from_init=1 the init function calls vmalloc() itself, and its caller is a raw
 * address as soon as the init text is freed.  After rmmod the caller is a raw address either
 * way. */
#include <linux/module.h>
#include <linux/vmalloc.h>

static int size_kb = 8192;
module_param(size_kb, int, 0444);
static int from_init;
module_param(from_init, int, 0444);
static void *buf;

/* Not a tail call (the result is stored here), so the caller vmallocinfo prints is this
 * function, which stays mapped while the module is loaded. */
static noinline void kml_vmalloc_leak_alloc(unsigned long bytes)
{
	buf = vmalloc(bytes);
	barrier();
}

static int __init kml_vmalloc_leak_init(void)
{
	unsigned long bytes = (unsigned long)size_kb << 10;

	if (from_init)
		buf = vmalloc(bytes);	/* the caller is __init: raw even while loaded */
	else
		kml_vmalloc_leak_alloc(bytes);
	if (!buf)
		return -ENOMEM;
	pr_info("kml_vmalloc_leak: leaked %d KiB of vmalloc\n", size_kb);
	return 0;
}

static void __exit kml_vmalloc_leak_exit(void)
{
	/* buf is not vfree()d: the leak */
}

module_init(kml_vmalloc_leak_init);
module_exit(kml_vmalloc_leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: leaks a vmalloc area");
