// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "devres": a platform driver whose probe() allocates managed buffers,
 * released by the driver core when the driver unbinds.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/device.h>
#include <linux/err.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/slab.h>
#include <linux/version.h>

#define KML_FAMILY "lab_devres"
#include "kmodlab_ktap.h"

static int buf_size = 256;
module_param(buf_size, int, 0444);
MODULE_PARM_DESC(buf_size, "bytes per buffer");

static int nbufs = 64;
module_param(nbufs, int, 0444);
MODULE_PARM_DESC(nbufs, "buffers allocated in probe");

static struct platform_device *lab_pdev;
static int allocated;

static int lab_probe(struct platform_device *pdev)
{
	struct kml_ktap t;
	int i;

	kml_ktap_begin(&t, "probe", 1);
	allocated = 0;
	/* TODO-BEGIN: allocate nbufs zeroed buffers of buf_size bytes, freed automatically when the driver unbinds; count them in `allocated` */
	for (i = 0; i < nbufs; i++) {
		if (!devm_kzalloc(&pdev->dev, buf_size, GFP_KERNEL))
			break;
		allocated++;
	}
	/* TODO-END */
	kml_diag("probe", "dev=%s nbufs=%d allocated=%d", dev_name(&pdev->dev), nbufs, allocated);
	kml_ktap_result(&t, allocated == nbufs, "probe");
	return 0;
}

/* .remove returns void from 6.11 on; devres frees the buffers after it returns. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
static void lab_remove(struct platform_device *pdev)
#else
static int lab_remove(struct platform_device *pdev)
#endif
{
	struct kml_ktap t;

	kml_ktap_begin(&t, "remove", 1);
	kml_diag("remove", "dev=%s allocated=%d", dev_name(&pdev->dev), allocated);
	kml_ktap_result(&t, true, "remove");
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 11, 0)
	return 0;
#endif
}

static struct platform_driver lab_driver = {
	.probe = lab_probe,
	.remove = lab_remove,
	.driver = {
		.name = KBUILD_MODNAME,
		.probe_type = PROBE_FORCE_SYNCHRONOUS,
	},
};

static int __init lab_init(void)
{
	struct kml_ktap t;
	int ret;

	if (buf_size < 1 || nbufs < 1)
		return -EINVAL;
	ret = platform_driver_register(&lab_driver);
	if (ret)
		return ret;
	lab_pdev = platform_device_register_simple(KBUILD_MODNAME, PLATFORM_DEVID_NONE, NULL, 0);
	if (IS_ERR(lab_pdev)) {
		platform_driver_unregister(&lab_driver);
		return PTR_ERR(lab_pdev);
	}
	kml_ktap_begin(&t, "load", 1);
	kml_diag("bound", "bound=%d", lab_pdev->dev.driver != NULL);
	kml_ktap_result(&t, lab_pdev->dev.driver != NULL, "bound");
	return 0;
}

static void __exit lab_exit(void)
{
	platform_device_unregister(lab_pdev);
	platform_driver_unregister(&lab_driver);
}

module_init(lab_init);
module_exit(lab_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("student (correct): devres and automatic release on unbind");
