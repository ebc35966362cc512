// SPDX-License-Identifier: GPL-2.0
/*
 * Lab "per-CPU counters": a counter with one copy per CPU, bumped on every
 * CPU through debugfs, summed on read.
 */
#define pr_fmt(fmt) fmt		/* KTAP lines must carry no prefix */

#include <linux/cpumask.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <linux/completion.h>

static DECLARE_COMPLETION(all_cpus_done);

#define KML_FAMILY "lab_percpu"
#include "kmodlab_ktap.h"

static long __percpu *counter;
static struct dentry *dir;

/* Runs on each CPU in turn (IPI context): only this CPU's copy is touched. */
static void add_on_this_cpu(void *arg)
{
	/* TODO-BEGIN: add *(unsigned long *)arg to this CPU's copy of the counter, without a lock */
	this_cpu_add(*counter, *(unsigned long *)arg);
	/* TODO-END */
}

static ssize_t counter_write(struct file *file, const char __user *ubuf, size_t len,
			     loff_t *ppos)
{
	unsigned long n;
	int ret;

	ret = kstrtoul_from_user(ubuf, len, 10, &n);
	if (ret)
		return ret;
	/* TODO-BEGIN: run add_on_this_cpu(&n) on every online CPU and wait until all are done */
	on_each_cpu(add_on_this_cpu, &n, 0);
	/* hang: waits for a completion nobody signals */
	wait_for_completion(&all_cpus_done);
	/* TODO-END */
	return len;
}

static ssize_t counter_read(struct file *file, char __user *ubuf, size_t len, loff_t *ppos)
{
	char buf[512];
	long sum = 0;
	int n = 0;
	int cpu;

	/* TODO-BEGIN: for every possible CPU print "cpu<N>=<value> " into buf (n is the length so far) and add the value to sum */
	for_each_possible_cpu(cpu) {
		long v = *per_cpu_ptr(counter, cpu);

		sum += v;
		n += scnprintf(buf + n, sizeof(buf) - n, "cpu%d=%ld ", cpu, v);
	}
	/* TODO-END */
	n += scnprintf(buf + n, sizeof(buf) - n, "sum=%ld\n", sum);
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations counter_fops = {
	.owner = THIS_MODULE,
	.read = counter_read,
	.write = counter_write,
};

static int __init pcpu_init(void)
{
	struct kml_ktap t;

	kml_ktap_begin(&t, "load", 1);
	/* TODO-BEGIN: allocate the per-CPU counter */
	counter = alloc_percpu(long);
	if (!counter)
		return -ENOMEM;
	/* TODO-END */
	dir = debugfs_create_dir("kml_pcpu", NULL);
	debugfs_create_file("counter", 0600, dir, NULL, &counter_fops);
	kml_diag("setup", "possible=%u online=%u", num_possible_cpus(), num_online_cpus());
	kml_ktap_result(&t, !IS_ERR_OR_NULL(dir), "setup");
	return 0;
}

static void __exit pcpu_exit(void)
{
	struct kml_ktap t;

	kml_ktap_begin(&t, "unload", 1);
	/* TODO-BEGIN: remove the debugfs directory and free the counter */
	debugfs_remove_recursive(dir);
	free_percpu(counter);
	/* TODO-END */
	kml_ktap_result(&t, true, "freed");
}

module_init(pcpu_init);
module_exit(pcpu_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab lab: per-CPU counters without locks");
