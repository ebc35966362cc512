"""What the README's first command prints: a quick look at a booted kernel's allocators."""

from __future__ import annotations

from kmodlab.guest import Guest

SLABINFO_LINES = 12


def guest_summary(guest: Guest) -> str:
    release = guest.run("uname -r", must_succeed=True).stdout.strip()
    slabinfo = guest.run("cat /proc/slabinfo", must_succeed=True).stdout.splitlines()
    buddyinfo = guest.run("cat /proc/buddyinfo", must_succeed=True).stdout.rstrip()
    meminfo = guest.run("grep -E '^(MemTotal|MemFree|Slab|SUnreclaim|VmallocUsed|Percpu):' "
                        "/proc/meminfo", must_succeed=True).stdout.rstrip()
    t = guest.timings
    lines = [
        f"kernel      {release} ({guest.kernel.arch}, Debian {guest.kernel.package_version})",
        (f"guest       {guest.options.cpus} CPU, {guest.options.memory_mb} MiB, "
         f"transport {guest.options.transport}, ready in {t.start_to_ready:.2f} s ({t.booted_from})"),
        f"console log {guest.console_log}",
        "",
        "/proc/slabinfo (top):",
        *slabinfo[:SLABINFO_LINES],
        "",
        "/proc/buddyinfo:",
        buddyinfo,
        "",
        "/proc/meminfo (allocator lines):",
        meminfo,
    ]
    return "\n".join(lines)
