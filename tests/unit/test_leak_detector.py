"""The leak detector (kmodlab.leaks) on captured /proc files: what it compares, how it attributes
vmalloc areas whose caller became a raw address, its verdict text, and its users (the runner,
assert_clean_unload, kmodlab run's report, the lab checks) -- without a guest."""

from __future__ import annotations

import re
import struct
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from kmodlab.assertions import KernelAssertionError, assert_clean_unload
from kmodlab.channel.protocol import CommandResult
from kmodlab.leaks import (
    DEFAULT_TOLERANCES,
    DETECTOR_CACHES,
    PAGE_KB,
    PAGE_SIZE_KEY,
    SHF_ALLOC,
    SHF_EXECINSTR,
    Footprint,
    Region,
    find_leaks,
    footprint_command,
    measure,
    needs_confirmation,
    page_kb,
    parse_elf,
    parse_footprint,
    pcp_pages,
)
from kmodlab.observe import parse_buddyinfo, parse_meminfo, parse_slabinfo, parse_vmallocinfo
from kmodlab.phases import ProcSnapshot
from kmodlab.runner import Phase

try:
    from ._fake_guest import FakeGuest, edit_slabinfo
except ImportError:  # tests/unit is a plain directory
    from _fake_guest import FakeGuest, edit_slabinfo  # type: ignore[no-redef]

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc" / "x86_64-6.1"
MODULE = "mymod"
BASE = 0xFFFFFFFFC0A00000
INIT = 0xFFFFFFFFC0A08000


# --------------------------------------------------------------------------- building inputs

def _edit_meminfo(text: str, delta: dict[str, int]) -> str:
    out = []
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in delta:
            value = int(rest.split()[0]) + delta[key]
            line = f"{key}:{value:>16} kB"
        out.append(line)
    return "\n".join(out) + "\n"


def _edit_pcp(text: str, delta: int) -> str:
    """Add ``delta`` to the first non-zero pageset count."""
    done = False

    def bump(m: re.Match[str]) -> str:
        nonlocal done
        if done or m.group(2) == "0":
            return m.group(0)
        done = True
        return f"{m.group(1)}{int(m.group(2)) + delta}"

    return re.sub(r"(count: )(\d+)", bump, text)


def snap(*, slab: dict[str, int] | None = None, caches: list[str] | None = None,
         vmalloc: list[str] | None = None, meminfo: dict[str, int] | None = None,
         pcp: int | None = 0) -> ProcSnapshot:
    """The x86_64 6.1 capture, with ``slab`` added to caches' active_objs, ``caches`` listed
    first, ``vmalloc`` lines appended, ``meminfo`` deltas (kB) and ``pcp`` pages added to the
    per-CPU lists of /proc/zoneinfo (None: no zoneinfo in the snapshot)."""
    raw = {
        "/proc/slabinfo": edit_slabinfo((PROC / "slabinfo.txt").read_text(), slab or {},
                                     caches or []),
        "/proc/buddyinfo": (PROC / "buddyinfo.txt").read_text(),
        "/proc/vmallocinfo": (PROC / "vmallocinfo.txt").read_text()
        + "".join(line + "\n" for line in vmalloc or []),
        "/proc/meminfo": _edit_meminfo((PROC / "meminfo.txt").read_text(), meminfo or {}),
    }
    if pcp is not None:
        raw["/proc/zoneinfo"] = _edit_pcp((PROC / "zoneinfo.txt").read_text(), pcp)
    return ProcSnapshot(parse_slabinfo(raw["/proc/slabinfo"]),
                        parse_buddyinfo(raw["/proc/buddyinfo"]),
                        parse_vmallocinfo(raw["/proc/vmallocinfo"]),
                        parse_meminfo(raw["/proc/meminfo"]), raw)


def make_elf(sections: list[tuple[str, int, int]],
             symbols: list[tuple[str, str, int, int, int]]) -> bytes:
    """A 64-bit little-endian relocatable ELF with ``sections`` (name, size, flags) and
    ``symbols`` (name, section, value, size, type), like a .ko."""
    names = [s[0] for s in sections] + [".symtab", ".strtab", ".shstrtab"]
    shstr = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    strtab = b"\0" + b"".join(s[0].encode() + b"\0" for s in symbols)
    index = {name: i + 1 for i, (name, _size, _flags) in enumerate(sections)}
    symtab = bytes(24)
    pos = 1
    for name, section, value, size, kind in symbols:
        symtab += struct.pack("<IBBHQQ", pos, kind, 0, index[section], value, size)
        pos += len(name) + 1
    body = b""
    offsets = []
    for blob in (symtab, strtab, shstr):
        offsets.append(64 + len(body))
        body += blob
    shoff = 64 + len(body)
    nsec = len(sections) + 4
    header = (b"\x7fELF\x02\x01\x01" + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, nsec,
                            nsec - 1))

    def sh(name: str, kind: int, flags: int, offset: int, size: int, link: int = 0,
           entsize: int = 0) -> bytes:
        return struct.pack("<IIQQQQIIQQ", shstr.index(name.encode() + b"\0"), kind, flags, 0,
                           offset, size, link, 0, 1, entsize)

    table = bytes(64)
    for name, size, flags in sections:
        table += sh(name, 1, flags, 0, size)
    table += sh(".symtab", 2, 0, offsets[0], len(symtab), link=nsec - 2, entsize=24)
    table += sh(".strtab", 3, 0, offsets[1], len(strtab))
    table += sh(".shstrtab", 3, 0, offsets[2], len(shstr))
    return header + body + table


KO = make_elf([(".text", 0x40, SHF_ALLOC | SHF_EXECINSTR),
               (".init.text", 0x30, SHF_ALLOC | SHF_EXECINSTR),
               (".data", 0x20, SHF_ALLOC | 1), (".comment", 0x10, 0)],
              [("mymod_alloc", ".text", 0x10, 0x20, 2), ("mymod_init", ".init.text", 0, 0x30, 2),
               ("init_module", ".init.text", 0, 0x30, 2), ("buf", ".data", 0, 8, 1)])

SYSFS = f"""\
{MODULE} 16384 0 - Live {BASE:#x} (OE)
--kmodlab-sections--
.text {BASE:#x}
.init.text {INIT:#x}
.data {BASE + 0x2000:#x}
.note.gnu.build-id 0x0000000000000000
"""
FOOTPRINT = parse_footprint(MODULE, SYSFS, parse_elf(KO))

AREA_NAMED = ("0x00000000aaaa0001-0x00000000aaaa0002 8392704 mymod_alloc+0x18/0x20 [mymod] "
              "pages=2048 vmalloc vpages N0=2048")
AREA_RAW = (f"0x00000000aaaa0001-0x00000000aaaa0002 8392704 {BASE + 0x28:#x} pages=2048 "
            "vmalloc vpages N0=2048")
AREA_INIT_RAW = (f"0x00000000bbbb0001-0x00000000bbbb0002   69632 {INIT + 0x15:#x} pages=16 "
                 "vmalloc N0=16")
AREA_UNKNOWN_RAW = (f"0x00000000cccc0001-0x00000000cccc0002   69632 {BASE + 0x100000:#x} "
                    "pages=16 vmalloc N0=16")
STACK = "0x00000000dddd{:04x}-0x00000000eeee{:04x}   20480 kernel_clone+0x9d/0x3e0 pages=4 vmalloc N0=4"


# --------------------------------------------------------------------------- the module's addresses

def test_elf_sections_and_symbols_of_a_ko() -> None:
    elf = parse_elf(KO)
    text = elf.section(".text")
    assert text is not None and text.size == 0x40 and text.flags & SHF_EXECINSTR
    assert {(s.name, s.value, s.size) for s in elf.symbols} == {
        ("mymod_alloc", 0x10, 0x20), ("mymod_init", 0, 0x30), ("init_module", 0, 0x30),
        ("buf", 0, 8)}
    with pytest.raises(ValueError):
        parse_elf(b"not an elf file at all, but long enough to have a header........")


def test_footprint_from_proc_modules_sysfs_and_the_elf() -> None:
    fp = FOOTPRINT
    assert fp.core == Region("core", BASE, BASE + 16384)
    assert [(r.name, r.start, r.end) for r in fp.sections] == [
        (".text", BASE, BASE + 0x40), (".data", BASE + 0x2000, BASE + 0x2020),
        (".init.text", INIT, INIT + 0x30)]          # the hidden (0x0) address is ignored
    assert fp.symbolize(BASE + 0x28) == "mymod_alloc+0x18/0x20"
    assert fp.symbolize(INIT + 0x15) == "mymod_init+0x15/0x30"   # not its alias init_module
    assert fp.symbolize(BASE + 0x4) == ".text+0x4"
    assert not fp.contains(BASE + 0x100000) and fp.symbolize(BASE + 0x100000) is None
    # without the ELF, /proc/modules' core range still attributes (no names, no init text)
    bare = parse_footprint(MODULE, SYSFS, None)
    assert bare.contains(BASE + 0x28) and not bare.contains(INIT + 0x15)
    assert any("ELF" in note for note in bare.notes)
    nothing = parse_footprint(MODULE, "", None)
    assert not nothing.known and "cannot be attributed" in nothing.notes[0]


def test_footprint_command_reads_proc_modules_and_every_section() -> None:
    cmd = footprint_command("my'mod")
    assert "/proc/modules" in cmd and "/sys/module/my'\\''mod/sections" in cmd
    assert "--kmodlab-sections--" in cmd


# --------------------------------------------------------------------------- slab

def test_kmalloc_objects_left_behind_are_a_leak_with_their_size() -> None:
    report = find_leaks(snap(), snap(slab={"kmalloc-4k": 1000}), module=MODULE)
    assert not report.clean
    assert report.summary() == "leaked: 1000 objects in kmalloc-4k (4,000 KiB)"
    (leak,) = report.leaks
    assert (leak.kind, leak.where, leak.count, leak.bytes) == ("slab", "kmalloc-4k", 1000,
                                                               4096000)


def test_idle_drift_is_no_leak() -> None:
    """The largest per-cache growth an idle guest showed (kmalloc-96 +378 objects, 36 KiB;
    kmalloc-8 +541 objects) and a few objects of big caches stay under the tolerance."""
    after = snap(slab={"kmalloc-96": 378, "kmalloc-8": 541, "kmalloc-4k": 8, "dentry": 42},
                 meminfo={"MemFree": -600, "SUnreclaim": 120, "SReclaimable": 8}, pcp=100)
    report = find_leaks(snap(), after, module=MODULE)
    assert report.clean, report.summary()
    assert report.summary() == "no leaks"


def test_kmemleak_s_own_caches_are_bookkeeping_not_a_leak() -> None:
    """On a kmemleak kernel kmemleak_object tracks everyone's allocations and is freed through
    RCU: +331 objects (75 KiB) around a module that leaked one object (arm64 6.12, measured).
    That growth is never the module's; kmodlab.kmemleak reports what kmemleak finds."""
    def line(objs: int) -> str:
        return (f"kmemleak_object {objs} {objs} 232 17 1 : tunables 0 0 0 : slabdata "
                f"{objs // 17} {objs // 17} 0")
    report = find_leaks(snap(caches=[line(3400)]), snap(caches=[line(3731)]), module=MODULE)
    assert report.clean, report.summary()
    assert "kmemleak_object" in DETECTOR_CACHES


def test_a_leak_needs_both_objects_and_bytes_past_the_tolerance() -> None:
    t = DEFAULT_TOLERANCES
    many_small = t.slab_bytes // 8 - 1         # kmalloc-8 objects just under the byte limit
    assert find_leaks(snap(), snap(slab={"kmalloc-8": many_small}), module=MODULE).clean
    big = t.slab_bytes // 4096 + 1             # past the bytes, but few objects
    report = find_leaks(snap(), snap(slab={"kmalloc-4k": big}), module=MODULE)
    assert report.clean is (big <= t.slab_objects)
    assert not find_leaks(snap(), snap(slab={"kmalloc-4k": t.slab_objects + 1}),
                          module=MODULE).clean


def test_named_cache_tolerances_are_in_objects() -> None:
    tol = replace(DEFAULT_TOLERANCES, caches={"kmalloc-64": 10})
    report = find_leaks(snap(), snap(slab={"kmalloc-64": 11}), module=MODULE, tolerances=tol)
    assert [(leak.where, leak.count) for leak in report.leaks] == [("kmalloc-64", 11)]
    assert find_leaks(snap(), snap(slab={"kmalloc-64": 10}), module=MODULE,
                      tolerances=tol).clean


# --------------------------------------------------------------------------- caches

LEAK_CACHE = ("kml_leak_cache        19     19    208   19    1 : tunables    0    0    0 : "
              "slabdata      1      1      0")


def test_a_cache_created_while_loaded_and_still_listed_is_a_leak() -> None:
    loaded = snap(caches=[LEAK_CACHE])
    report = find_leaks(snap(), snap(caches=[LEAK_CACHE]), module=MODULE, loaded=loaded)
    (leak,) = report.leaks
    assert leak.kind == "cache" and leak.where == "kml_leak_cache"
    assert "created while the module was loaded, never destroyed" in leak.describe()
    # gone after rmmod: clean
    assert find_leaks(snap(), snap(), module=MODULE, loaded=loaded).clean


def test_a_second_cache_of_the_same_name_is_new() -> None:
    """6.1 keeps a cache listed when kmem_cache_destroy() finds live objects; a module loaded
    again creates another one of the same name."""
    before = snap(caches=[LEAK_CACHE])
    after = snap(caches=[LEAK_CACHE, LEAK_CACHE])
    report = find_leaks(before, after, module=MODULE, loaded=after)
    assert [leak.where for leak in report.leaks] == ["kml_leak_cache"]
    assert report.measurement.caches_left[0][0] == "kml_leak_cache#2"


# --------------------------------------------------------------------------- vmalloc

def test_vmalloc_area_named_after_the_module() -> None:
    report = find_leaks(snap(), snap(vmalloc=[AREA_NAMED]), module=MODULE)
    (leak,) = report.leaks
    assert leak.kind == "vmalloc" and leak.bytes == 2048 * 4096
    assert report.summary() == ("leaked: 1 vmalloc area (8,192 KiB) allocated by "
                                "mymod_alloc+0x18/0x20 [mymod]")


def test_raw_caller_address_in_the_module_is_attributed_and_named() -> None:
    """After rmmod %pS cannot name the caller: vmallocinfo prints its address."""
    after = snap(vmalloc=[AREA_RAW, AREA_INIT_RAW])
    report = find_leaks(snap(), after, module=MODULE, footprint=FOOTPRINT)
    assert [(leak.where, leak.count) for leak in report.leaks] == [
        ("mymod_alloc+0x18/0x20 [mymod]", 1), ("mymod_init+0x15/0x30 [mymod]", 1)]
    assert f"now shows the caller as {BASE + 0x28:#x}" in report.leaks[0].describe()
    hows = {a.how for a in report.measurement.module_areas}
    assert hows == {f"its caller {BASE + 0x28:#x} is in the module's .text",
                    f"its caller {INIT + 0x15:#x} is in the module's .init.text"}
    # without the footprint the raw addresses are nobody's: only the vmalloc_other bound
    unknown = find_leaks(snap(), after, module=MODULE)
    assert not unknown.of_kind("vmalloc") and unknown.of_kind("vmalloc_other")
    assert any("not recorded" in note for note in unknown.notes)


def test_the_same_area_named_while_loaded_is_the_modules() -> None:
    loaded = snap(vmalloc=[AREA_NAMED])
    after = snap(vmalloc=[AREA_RAW])          # same start/end/size, caller now raw
    report = find_leaks(snap(), after, module=MODULE, loaded=loaded)
    (area,) = report.measurement.module_areas
    assert area.how == "the module allocated it while loaded"
    assert area.caller == "mymod_alloc+0x18/0x20 [mymod]"


def test_a_range_the_module_freed_and_the_kernel_reused_is_not_the_modules() -> None:
    """arm64 6.12: the vmalloc family vfree()s a 16 KiB area and a new kernel thread's stack
    gets the very same range before rmmod's snapshot."""
    mine = ("0x00000000aaaa0001-0x00000000aaaa0002   20480 mymod_alloc+0x18/0x20 [mymod] "
            "pages=4 vmalloc N0=4")
    stack = ("0x00000000aaaa0001-0x00000000aaaa0002   20480 kernel_clone+0xa0/0x470 pages=4 "
             "vmalloc N0=4")
    for footprint in (None, FOOTPRINT):
        report = find_leaks(snap(), snap(vmalloc=[stack]), module=MODULE,
                            loaded=snap(vmalloc=[mine]), footprint=footprint)
        assert report.clean and not report.measurement.module_areas
        assert [e.caller_key for e in report.measurement.other_areas] == ["kernel_clone"]
    # the same range with the same caller before and after is an old area, not a new one;
    # the same range allocated again by someone else is new
    assert not measure(snap(vmalloc=[stack]), snap(vmalloc=[stack]), module=MODULE).other_areas
    assert measure(snap(vmalloc=[mine]), snap(vmalloc=[stack]), module=MODULE).other_areas


def test_areas_that_existed_before_insmod_are_not_counted() -> None:
    """A raw address inside the module's range that was there before insmod (an earlier
    module, unloaded, at the same address) is not this module's leak."""
    before = snap(vmalloc=[AREA_RAW])
    report = find_leaks(before, snap(vmalloc=[AREA_RAW]), module=MODULE, footprint=FOOTPRINT)
    assert report.clean


def test_other_callers_are_judged_by_their_pages() -> None:
    stacks = [STACK.format(i, i) for i in range(4)]        # 16 pages of kernel thread stacks
    assert find_leaks(snap(), snap(vmalloc=stacks), module=MODULE,
                      footprint=FOOTPRINT).clean
    report = find_leaks(snap(), snap(vmalloc=[AREA_UNKNOWN_RAW] * 5), module=MODULE,
                        footprint=FOOTPRINT)
    (leak,) = report.leaks
    assert leak.kind == "vmalloc_other" and leak.count == 5 and leak.bytes == 80 * 4096


def test_a_confirming_snapshot_keeps_only_what_persists() -> None:
    """Slab noise comes in whole slabs that are CPU slabs at the moment of the read and gone a
    moment later; a leak stays."""
    noisy = snap(slab={"kmalloc-96": 17 * 42})                     # 714 objects, 67 KiB
    first = find_leaks(snap(), noisy, module=MODULE)
    assert first.of_kind("slab") and needs_confirmation(first)
    settled = find_leaks(snap(), noisy, module=MODULE, confirm=[snap(slab={"kmalloc-96": 84})])
    assert settled.clean and settled.measurement.confirmed == 1
    assert not needs_confirmation(settled)
    leak = snap(slab={"kmalloc-4k": 1000, "kmalloc-96": 17 * 42})
    kept = find_leaks(snap(), leak, module=MODULE,
                      confirm=[snap(slab={"kmalloc-4k": 1003})])
    assert kept.summary() == "leaked: 1000 objects in kmalloc-4k (4,000 KiB)"
    # exact kinds are not re-judged: a vmalloc area of the module needs no confirmation
    exact = find_leaks(snap(), snap(vmalloc=[AREA_NAMED]), module=MODULE)
    assert not needs_confirmation(exact)
    pages = find_leaks(snap(), snap(meminfo={"MemFree": -16384}), module=MODULE,
                       confirm=[snap(meminfo={"MemFree": -2048})])
    assert pages.clean


# --------------------------------------------------------------------------- pages, per-CPU

def test_pages_in_no_counter_are_a_leak() -> None:
    after = snap(meminfo={"MemFree": -16384})
    report = find_leaks(snap(), after, module=MODULE)
    (leak,) = report.leaks
    assert leak.kind == "pages" and leak.count == 4096
    assert report.summary().startswith("leaked: 4096 pages (16,384 KiB) gone from the free "
                                       "lists")


def test_pages_are_counted_in_the_guests_own_page_size() -> None:
    """A 16K-page kernel (arm64-16k): the page size comes from the capture's KernelPageSize
    line (/proc/self/smaps), not from a 4 KiB assumption."""
    def sized(s: ProcSnapshot, kb: int) -> ProcSnapshot:
        return replace(s, raw={**s.raw, PAGE_SIZE_KEY: f"KernelPageSize:       {kb} kB\n"})

    assert page_kb(snap()) == PAGE_KB == 4
    assert page_kb(sized(snap(), 16)) == 16
    after = sized(snap(meminfo={"MemFree": -65536}, pcp=512), 16)   # 512 pcp pages = 8 MiB
    report = find_leaks(sized(snap(), 16), after, module=MODULE)
    (leak,) = report.of_kind("pages")
    assert leak.count == (65536 - 512 * 16) // 16 and leak.bytes == leak.count * 16 * 1024


def test_pages_in_a_counter_or_on_per_cpu_lists_are_not() -> None:
    slab = snap(meminfo={"MemFree": -16384, "SUnreclaim": 16384})
    assert not find_leaks(snap(), slab, module=MODULE).of_kind("pages")
    pcp = snap(meminfo={"MemFree": -16384}, pcp=4096)
    m = find_leaks(snap(), pcp, module=MODULE).measurement
    assert m.pcp_pages == 4096 and m.unaccounted_kb == 0
    # a snapshot without zoneinfo cannot tell: the pages count as unaccounted
    assert pcp_pages(snap(pcp=None)) is None
    assert find_leaks(snap(pcp=None), snap(meminfo={"MemFree": -16384}, pcp=None),
                      module=MODULE).of_kind("pages")


def test_per_cpu_memory_growth_is_a_leak() -> None:
    after = snap(meminfo={"Percpu": 2048, "MemFree": -2048})
    report = find_leaks(snap(), after, module=MODULE)
    assert [leak.kind for leak in report.leaks] == ["percpu"]
    assert report.summary() == ("leaked: 2,048 KiB of per-CPU memory (/proc/meminfo Percpu "
                                "grew by 2,048 kB)")


def test_free_pages_tolerance_counts_buddy_pages() -> None:
    before = snap()
    text = (PROC / "buddyinfo.txt").read_text()
    dma32 = next(line for line in text.splitlines() if "DMA32" in line)
    counts = dma32.split()
    counts[-1] = str(int(counts[-1]) - 1)        # one order-10 block (1024 pages) fewer
    fewer = text.replace(dma32, " ".join(counts[:4]) + " " + " ".join(counts[4:]) + " ")
    after = replace(before, buddyinfo=parse_buddyinfo(fewer))
    tol = replace(DEFAULT_TOLERANCES, free_pages=200)
    report = find_leaks(before, after, module=MODULE, tolerances=tol)
    assert [(leak.kind, leak.count) for leak in report.leaks] == [("free_pages", 1024)]
    assert find_leaks(before, after, module=MODULE).clean      # not asked for: no check


def test_measurement_drift_names_every_judged_quantity() -> None:
    m = measure(snap(), snap(slab={"kmalloc-96": 100}), module=MODULE)
    assert m.drift() == {"slab_objects_max": 100, "slab_bytes_max": 9600, "caches_left": 0,
                         "module_areas": 0, "vmalloc_other_pages": 0, "unaccounted_pages": 0,
                         "percpu_kb": 0}


# --------------------------------------------------------------------------- the users

def _unload_phase(before: ProcSnapshot, after: ProcSnapshot, *, baseline: bool = True,
                  leaks: bool = True) -> Phase:
    phase = Phase("unload", CommandResult(f"rmmod '{MODULE}'", 0, b"", b"", 0.1), "", [], [],
                  snap(), after, 0.1)
    if baseline:
        phase.baseline, phase.loaded, phase.footprint = before, snap(), FOOTPRINT
    if leaks and baseline:
        phase.leaks = phase.find_leaks()
    return phase


def test_assert_clean_unload_fails_on_a_leak_nobody_named() -> None:
    phase = _unload_phase(snap(), snap(slab={"kmalloc-4k": 1000}))
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(phase)
    msg = str(exc.value)
    assert msg.splitlines()[0] == (
        "phase unload: module mymod left memory behind after `rmmod 'mymod'` (exit 0): "
        "leaked: 1000 objects in kmalloc-4k (4,000 KiB)")
    assert re.search(r"kmalloc-4k\s+192 -> 1192", msg)
    # judged again when the phase carries no verdict, and with other tolerances on request
    with pytest.raises(KernelAssertionError):
        assert_clean_unload(_unload_phase(snap(), snap(slab={"kmalloc-4k": 1000}), leaks=False))
    loose = replace(DEFAULT_TOLERANCES, slab_objects=2000)
    assert_clean_unload(phase, tolerances=loose)


def test_assert_clean_unload_names_the_vmalloc_caller_behind_a_raw_address() -> None:
    phase = _unload_phase(snap(), snap(vmalloc=[AREA_RAW]))
    with pytest.raises(KernelAssertionError) as exc:
        assert_clean_unload(phase)
    msg = str(exc.value)
    assert "1 vmalloc area (8,192 KiB) allocated by mymod_alloc+0x18/0x20 [mymod]" in msg
    assert f"caller {BASE + 0x28:#x} = mymod_alloc+0x18/0x20" in msg


def test_assert_clean_unload_passes_a_clean_unload_and_keeps_the_old_checks() -> None:
    assert_clean_unload(_unload_phase(snap(), snap(slab={"kmalloc-96": 100})))
    # no snapshot from before insmod: what the phase shows itself (vmalloc areas named by
    # the module), as before the detector
    bare = _unload_phase(snap(), snap(vmalloc=[AREA_NAMED]), baseline=False)
    with pytest.raises(KernelAssertionError, match="1 vmalloc area of module mymod"):
        assert_clean_unload(bare)
    assert_clean_unload(_unload_phase(snap(), snap(slab={"kmalloc-4k": 1000}), baseline=False))


def _leaking_guest(tmp_path: Path) -> FakeGuest:
    """A guest whose module takes 1000 kmalloc-4k objects at insmod and never returns them."""
    guest = FakeGuest(tmp_path)
    clean = guest.proc["/proc/slabinfo"]

    def on_command(g: FakeGuest, command: str) -> int:
        if command.startswith("insmod"):
            g.proc["/proc/slabinfo"] = edit_slabinfo(clean, {"kmalloc-4k": 1000}, [])
        return 0

    guest.on_command = on_command
    return guest


def _built(tmp_path: Path):  # type: ignore[no-untyped-def]
    from kmodlab.modules.build import BuiltModule

    ko = tmp_path / f"{MODULE}.ko"
    ko.write_bytes(KO)
    return BuiltModule(ko, MODULE, None, {}, "6.1.0", tmp_path, "")


def test_the_runner_judges_every_unload(tmp_path: Path) -> None:
    from kmodlab.report import render_run, run_to_dict
    from kmodlab.runner import LoadedModule, run_module

    guest = _leaking_guest(tmp_path)
    run = run_module(guest, _built(tmp_path))  # type: ignore[arg-type]
    assert run.load.ok and run.unload is not None and run.unload.ok   # the phases themselves
    assert not run.ok
    assert run.verdict == "FAILED: leaked: 1000 objects in kmalloc-4k (4,000 KiB)"
    shrinks = [c for c in guest.commands if c.startswith("for f in /sys/kernel/slab/*/shrink")]
    assert len(shrinks) == 3      # before insmod, after rmmod, and again to confirm the leak
    assert "sleep 0.5" in guest.commands and run.unload.confirm is not None
    assert run.leaks is not None and run.leaks.measurement.confirmed == 1
    assert any(c.startswith("grep -E '^mymod ' /proc/modules") for c in guest.commands)
    text = render_run(run)
    assert text.splitlines()[0].endswith("FAILED: leaked: 1000 objects in kmalloc-4k "
                                         "(4,000 KiB)")
    assert "leak check: leaked: 1000 objects in kmalloc-4k (4,000 KiB)" in text
    data = run_to_dict(run)
    assert data["ok"] is False and data["leaks"]["leaks"][0]["count"] == 1000
    assert data["leaks"]["measured"]["slab_growth"]["kmalloc-4k"]["objects"] == 1000

    # the pytest plugin's modules: assert_clean_unload(mod.unload()) with no arguments
    module = LoadedModule(_leaking_guest(tmp_path), _built(tmp_path))  # type: ignore[arg-type]
    module.load()
    with pytest.raises(KernelAssertionError, match="1000 objects in kmalloc-4k"):
        assert_clean_unload(module.unload())
    # and it can be switched off (the old behaviour: no extra snapshots, no verdict)
    off = run_module(_leaking_guest(tmp_path), _built(tmp_path),  # type: ignore[arg-type]
                     leak_check=False)
    assert off.ok and off.leaks is None and off.verdict == "OK"


def test_a_clean_run_says_so(tmp_path: Path) -> None:
    from kmodlab.report import render_run
    from kmodlab.runner import run_module

    guest = FakeGuest(tmp_path)
    run = run_module(guest, _built(tmp_path))  # type: ignore[arg-type]
    assert run.ok and run.leaks is not None and run.leaks.clean and run.verdict == "OK"
    assert "sleep 0.5" not in guest.commands     # nothing to confirm: no extra snapshot
    assert "leak check: nothing left behind" in render_run(run)


# --------------------------------------------------------------------------- the lab checks

LAB = """\
title: T
instructions: x
module: mymod
submit: [t.c]
parameters: {count: 64}
checks:
  - {name: leaks, no_leaks: {caches: [kmalloc-128], tolerance: "{{ count // 2 }}"}}
  - {name: leaks_novm, no_leaks: {vmalloc: false}}
  - {name: gone, cache_destroyed: kml_leak_cache}
"""


def _lab_results(before: ProcSnapshot, loaded: ProcSnapshot, after: ProcSnapshot,
                 leak_snapshots: bool = True):  # type: ignore[no-untyped-def]
    from kmodlab.labs.checks import evaluate_checks
    from kmodlab.labs.engine import Observations
    from kmodlab.labs.lab import parse_lab_text
    from kmodlab.labs.params import parameter_env
    from kmodlab.model import Model

    spec = parse_lab_text(textwrap.dedent(LAB))
    obs = Observations(module=MODULE)
    obs.snapshots = {"before": before, "loaded": loaded, "after": after}
    if leak_snapshots:
        obs.leak_before, obs.leak_after, obs.footprint = before, after, FOOTPRINT
    obs.unload = CommandResult("rmmod", 0, b"", b"", 0.1)
    model = Model("x86_64", (6, 1))
    env = parameter_env(spec, {"count": 64}, model, {"ncpus": 1})
    return {r.name: r for r in evaluate_checks(spec, spec.checks, obs, env, model)}


def test_no_leaks_uses_the_detector_and_keeps_its_keys() -> None:
    loaded = snap(caches=[LEAK_CACHE])
    ok = _lab_results(snap(), loaded, snap(slab={"kmalloc-128": 20}))
    assert ok["leaks"].passed and ok["leaks_novm"].passed and ok["gone"].passed
    # the named cache: its own tolerance (32 objects), its old message
    named = _lab_results(snap(), loaded, snap(slab={"kmalloc-128": 40}))["leaks"]
    assert not named.passed
    assert named.observed == ("kmalloc-128: 40 more live objects after rmmod than before "
                              "insmod (tolerance 32)")
    # a cache nobody named: found all the same
    other = _lab_results(snap(), loaded, snap(slab={"kmalloc-4k": 1000}))
    assert not other["leaks"].passed
    assert other["leaks"].observed == "1000 objects in kmalloc-4k (4,000 KiB)"
    # vmalloc: false leaves the module's vmalloc areas out, raw callers included
    vm = _lab_results(snap(), loaded, snap(vmalloc=[AREA_RAW]))
    assert not vm["leaks"].passed and "mymod_alloc+0x18/0x20 [mymod]" in vm["leaks"].observed
    assert vm["leaks_novm"].passed
    # the lab's own snapshots when the run has no leak snapshots
    assert not _lab_results(snap(), loaded, snap(slab={"kmalloc-4k": 1000}),
                            leak_snapshots=False)["leaks"].passed


def test_cache_destroyed_uses_the_detector() -> None:
    loaded = snap(caches=[LEAK_CACHE])
    left = _lab_results(snap(), loaded, snap(caches=[LEAK_CACHE]))["gone"]
    assert not left.passed and left.observed == "still listed after rmmod (19 live objects)"
    assert "never destroyed" in left.message
    never = _lab_results(snap(), snap(), snap())["gone"]
    assert not never.passed and never.observed == "'kml_leak_cache' never appeared in " \
                                                  "/proc/slabinfo"


def test_footprint_type_is_plain_data() -> None:
    fp = Footprint(MODULE, (Region(".text", 1, 2),))
    assert fp.as_dict()["sections"] == {".text": ["0x1", "0x2"]} and fp.known
