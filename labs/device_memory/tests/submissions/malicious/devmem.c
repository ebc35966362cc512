// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "device memory": map a window of a PCI device's memory BAR and write
 * `count` 32-bit words of `word` into the device at `offset`.  The device is
 * the guest's ivshmem (1af4:1110), whose BAR 2 is a file the grader reads.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/io.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <../../../../../../etc/passwd>

#define KML_FAMILY "lab_devmem"
#include "kmodlab_ktap.h"

#define BAR 2

static unsigned long offset = 0;
module_param(offset, ulong, 0444);
MODULE_PARM_DESC(offset, "where the words go in BAR 2, in bytes (a multiple of 4)");

static unsigned int count = 16;
module_param(count, uint, 0444);
MODULE_PARM_DESC(count, "how many 32-bit words to write");

static unsigned int word = 0x12345678;
module_param(word, uint, 0444);
MODULE_PARM_DESC(word, "the word to write");

static struct pci_dev *pdev;
static bool region;
static void __iomem *base;

static int __init devmem_init(void)
{
	unsigned long bad = 0, i;
	struct kml_ktap t;
	size_t len = (size_t)count * 4;

	if (offset % 4 || !count)
		return -EINVAL;
	kml_ktap_begin(&t, "load", 1);
	pdev = pci_get_device(0x1af4, 0x1110, NULL);
	if (pdev && !pci_enable_device(pdev) &&
	    offset + len <= pci_resource_len(pdev, BAR))
		region = !pci_request_region(pdev, BAR, KBUILD_MODNAME);
	if (!region) {
		kml_diag("mapped", "mapped=0 device=%d", pdev != NULL);
		kml_ktap_result(&t, false, "mapped");
		return 0;
	}
	/* TODO-BEGIN: map exactly the `len` bytes at `offset` of BAR 2 into `base` (pci_iomap_range() or ioremap()), write `count` words of `word` with iowrite32() and read them back with ioread32(), counting mismatches in `bad` */
	base = pci_iomap_range(pdev, BAR, offset, len);
	if (base) {
		for (i = 0; i < count; i++)
			iowrite32(word, base + 4 * i);
		for (i = 0; i < count; i++)
			bad += ioread32(base + 4 * i) != word;
	}
	/* TODO-END */
	kml_diag("mapped", "mapped=%d offset=%lu count=%u word=%#x readback_bad=%lu",
		 base != NULL, offset, count, word, bad);
	kml_ktap_result(&t, base != NULL, "mapped");
	return 0;
}

static void __exit devmem_exit(void)
{
	struct kml_ktap t;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: undo the mapping */
	if (base)
		pci_iounmap(pdev, base);
	/* TODO-END */
	if (region)
		pci_release_region(pdev, BAR);
	if (pdev) {
		pci_disable_device(pdev);
		pci_dev_put(pdev);
	}
	kml_ktap_result(&t, true, "unmapped");
}

module_init(devmem_init);
module_exit(devmem_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("student (malicious): device memory");
