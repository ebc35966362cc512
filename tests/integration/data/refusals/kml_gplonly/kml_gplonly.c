// SPDX-License-Identifier: MIT
/*
 * Calls a GPL-only export (debugfs_create_dir(), EXPORT_SYMBOL_GPL in fs/debugfs/inode.c) from a
 * module whose license is not GPL-compatible: the kernel does not link it ("Unknown symbol").
 * It also takes a parameter, so that a misspelt one is reported as ignored.
 */
#include <linux/module.h>
#include <linux/debugfs.h>

static int depth = 1;
module_param(depth, int, 0444);

static struct dentry *kml_dir;

static int __init kml_gpl_init(void)
{
	kml_dir = debugfs_create_dir("kml_gplonly", NULL);
	return 0;
}

static void __exit kml_gpl_exit(void)
{
	debugfs_remove(kml_dir);
}

module_init(kml_gpl_init);
module_exit(kml_gpl_exit);
MODULE_LICENSE("Proprietary");
