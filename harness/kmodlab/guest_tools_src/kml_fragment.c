// SPDX-License-Identifier: GPL-2.0
/*
 * kml_fragment: fragment the guest's physical memory with movable pages.
 *
 *   kml_fragment [MARGIN_KIB]
 *
 * 1. Maps anonymous memory up to MemFree minus MARGIN_KIB (default 32768),
 *    touches its pages until MemFree falls to the margin (well above the
 *    zones' watermarks, so the faults never need reclaim) -- every page (order-0 faults: transparent huge pages are refused
 *    with MADV_NOHUGEPAGE), then gives back every other page (MADV_DONTNEED):
 *    half the region is free, in single pages between pages still held.
 * 2. Large blocks can survive step 1: the page allocator splits its largest
 *    blocks last, and a lower zone's lowmem reserve stops the fill before it
 *    reaches them (x86's 16 MiB DMA zone, which GFP_KERNEL may still use).
 *    A second region, a quarter of what is then free (at most 64 MiB), asks
 *    for transparent huge pages (MADV_HUGEPAGE): each fault takes a whole
 *    PMD-sized block while one is free.  The caller sets
 *    /sys/kernel/mm/transparent_hugepage/enabled to "madvise" (Debian's
 *    cloud kernels boot with "never") and defrag to "never", so these faults
 *    never compact step 1's holes away; once no block is left they take
 *    single pages from the holes instead.
 *
 * No free block of the PMD order (2 MiB with 4 KiB pages) or above is then
 * left.  Anonymous pages are movable: compaction (/proc/sys/vm/compact_memory)
 * can migrate them and rebuild high-order blocks.
 *
 * The process forks: the child holds the memory and sleeps until killed
 * (its pid is printed and written to /tmp/kml_fragment.pid); the parent
 * prints "pid=..." and exits once the child is
 * ready.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static long meminfo_kib(const char *key)
{
	char line[256];
	long value = -1;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			value = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return value;
}

/* MemFree less free CMA pages (CmaFree is absent without CONFIG_CMA). */
static long usable_kib(void)
{
	long cma = meminfo_kib("CmaFree");

	return meminfo_kib("MemFree") - (cma > 0 ? cma : 0);
}

int main(int argc, char **argv)
{
	long margin = argc > 1 ? strtol(argv[1], NULL, 10) : 32768;
	long page = sysconf(_SC_PAGESIZE), free_kib = usable_kib();
	int ready[2];
	char byte;
	size_t size, off;
	char *region;
	pid_t pid;

	if (free_kib < 0 || margin < 0 || free_kib <= margin) {
		fprintf(stderr, "kml_fragment: MemFree %ld KiB, margin %ld KiB: nothing to do\n",
			free_kib, margin);
		return 1;
	}
	size = (size_t)(free_kib - margin) * 1024 / (2 * page) * (2 * page);
	if (pipe(ready))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid > 0) {
		close(ready[1]);
		if (read(ready[0], &byte, 1) != 1) {
			fprintf(stderr, "kml_fragment: the holder died before it was ready\n");
			return 1;
		}
		printf("pid=%d\n", (int)pid);
		return 0;
	}
	close(ready[0]);
	/* The holder outlives the command: it must not keep the caller's output open. */
	setsid();
	{
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
	}
	region = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		_exit(1);
	madvise(region, size, MADV_NOHUGEPAGE);
	/*
	 * MemFree counts pages a lower zone's lowmem reserve keeps from these faults
	 * (x86's DMA zone) and free CMA pages, which the kernel's own unmovable
	 * allocations (these faults' page tables) cannot use: stop when MemFree less
	 * CmaFree reaches the margin, read every 4 MiB.
	 */
	for (off = 0; off < size; off += page) {
		if (off % (4 << 20) == 0 && usable_kib() < margin)
			break;
		region[off] = 1;
	}
	size = off / (2 * page) * (2 * page);
	for (off = 0; off < size; off += 2 * page)
		madvise(region + off, page, MADV_DONTNEED);
	free_kib = usable_kib();
	if (free_kib > 8192) {
		/* a quarter of what is free now, at most 64 MiB: room for the faults that find no
		 * block and take single pages (holes) instead */
		size_t big = (size_t)(free_kib / 4 < 65536 ? free_kib / 4 : 65536) * 1024;
		char *huge = mmap(NULL, big, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (huge != MAP_FAILED) {
			madvise(huge, big, MADV_HUGEPAGE);
			for (off = 0; off < big; off += page)
				huge[off] = 1;
		}
	}
	{
		FILE *f = fopen("/tmp/kml_fragment.pid", "w");

		if (f) {
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
		}
	}
	if (write(ready[1], "r", 1) != 1)
		_exit(1);
	close(ready[1]);
	for (;;)
		pause();
}
