// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "large buffers in fragmented memory": 2^order contiguous pages if a
 * block is free without waiting, else vmalloc() of the same size.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#define KML_FAMILY "lab_frag"
#include "kmodlab_ktap.h"

static int order = 9;
module_param(order, int, 0444);
MODULE_PARM_DESC(order, "the buffer is 2^order pages");

static void *buf;
static bool contiguous;

/*
 * Not __init and not inlined: /proc/vmallocinfo shows this function as the
 * caller of vmalloc(), and it must still have a name after the module loaded.
 */
static noinline void *frag_alloc(size_t size)
{
	void *p;

	/* TODO-BEGIN: 2^order contiguous pages without waiting or warning, else vmalloc() of the same size */
	p = (void *)__get_free_pages(GFP_NOWAIT | __GFP_NOWARN, order - 1);
	contiguous = p != NULL;
	if (!p)
		p = vmalloc(size);
	/* TODO-END: p = NULL; */
	OPTIMIZER_HIDE_VAR(p);	/* keeps the call from becoming a tail call */
	return p;
}

static int __init frag_init(void)
{
	size_t size;
	struct kml_ktap t;

	if (order < 1 || order > 10)
		return -EINVAL;
	size = PAGE_SIZE << (order - 1);	/* wrong: half the buffer */
	kml_ktap_begin(&t, "load", 1);
	buf = frag_alloc(size);
	if (buf)
		memset(buf, 0x5a, size);
	kml_diag("buffer", "contiguous=%d vmalloc=%d size=%zu", contiguous,
		 buf ? is_vmalloc_addr(buf) : 0, buf ? size : 0);
	kml_ktap_result(&t, buf != NULL, "buffer");
	return 0;
}

static void __exit frag_exit(void)
{
	/* TODO-BEGIN: free the buffer with the function that matches how it was allocated */
	if (contiguous)
		free_pages((unsigned long)buf, order - 1);
	else
		vfree(buf);
	/* TODO-END */
}

module_init(frag_init);
module_exit(frag_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("student (wrong: half the size): a large buffer in fragmented memory");
