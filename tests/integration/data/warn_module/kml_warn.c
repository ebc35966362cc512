// SPDX-License-Identifier: GPL-2.0
/* A module whose load raises a real kernel WARNING: tests that kmodlab fails a test on it. */
#include <linux/module.h>
#include <linux/bug.h>

static int __init kml_warn_init(void)
{
	WARN(1, "kmodlab test warning\n");
	return 0;
}

static void __exit kml_warn_exit(void)
{
}

module_init(kml_warn_init);
module_exit(kml_warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab test: a deliberate WARN at load");
