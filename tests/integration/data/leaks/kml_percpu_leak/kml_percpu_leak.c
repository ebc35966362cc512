// SPDX-License-Identifier: GPL-2.0
/* kmodlab leak tests: __alloc_percpu()s `count` areas of `size` bytes and never frees them. */
#include <linux/module.h>
#include <linux/percpu.h>

static int count = 256;
module_param(count, int, 0444);
static int size = 4096;
module_param(size, int, 0444);

static int __init kml_percpu_leak_init(void)
{
	int i, got = 0;

	for (i = 0; i < count; i++)
		if (__alloc_percpu(size, 8))
			got++;
	pr_info("kml_percpu_leak: leaked %d per-CPU areas of %d bytes\n", got, size);
	return 0;
}

static void __exit kml_percpu_leak_exit(void)
{
	/* nothing freed: the leak */
}

module_init(kml_percpu_leak_init);
module_exit(kml_percpu_leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: leaks per-CPU memory");
