"""percpu: one copy per possible CPU, counters that read as the sum of all copies, the
alloc_percpu() size/alignment rules, and /proc/meminfo Percpu (populated chunk pages, usually
unchanged by small allocations)."""

from __future__ import annotations

from collections.abc import Iterator

from kmodlab.check.common import lifecycle_rows
from kmodlab.check.observation import Observation, Probe, values
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.model import Model
from kmodlab.modules.params.percpu import PercpuParams

FAMILY = "percpu"
PARAMS = ("increments=3", "sizes=4,64,1024,8192", "align=8")
R_POSSIBLE = "include/linux/cpumask.h:for_each_possible_cpu(): one copy per possible CPU"


def probes(model: Model) -> list[Probe]:
    return [Probe(FAMILY, FAMILY, PARAMS)]


def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
    rows = Rows(FAMILY, obs.probe.name)
    p = obs.params
    assert isinstance(p, PercpuParams)
    load = obs.load
    # alloc_percpu(unsigned long): a long is pointer-sized on Linux (LP64, and ILP32 on i386)
    counter = model.alloc_percpu(model.params.pointer_size)
    v = values(load, "alloc_percpu_counter")
    rows.exact("alloc_percpu_counter", "size", counter.value.size, v.get("size"), counter.rule)
    rows.exact("alloc_percpu_counter", "align", counter.value.align, v.get("align"),
               counter.rule, "alloc_percpu(type) passes __alignof__(type)")
    copies = counter.value.copies
    cpus = [r for doc in load.ktap for _p, r in doc.walk() if r.name.startswith("percpu_cpu")]
    rows.exact("percpu_cpuN", "copies (possible CPUs)", copies, len(cpus) if cpus else None,
               R_POSSIBLE)
    total = values(load, "percpu_sum")
    rows.exact("percpu_sum", "possible CPUs", copies, total.get("possible_cpus"), R_POSSIBLE)
    each = [p.increments] * copies
    summed = model.percpu_sum(each)
    rows.exact("percpu_sum", "DEFINE_PER_CPU sum", summed.value, total.get("static"),
               summed.rule, f"{p.increments} added on each CPU (on_each_cpu)")
    rows.exact("percpu_sum", "alloc_percpu sum", summed.value, total.get("dynamic"),
               summed.rule)
    for cpu in range(copies):
        vc = values(load, f"percpu_cpu{cpu}")
        rows.exact(f"percpu_cpu{cpu}", "this CPU's copy", p.increments, vc.get("dynamic"),
                   "include/linux/percpu-defs.h:this_cpu_add() touches only the local copy")
    for size in p.sizes:
        test = f"alloc_percpu_{size}"
        area = model.alloc_percpu(size, p.align)
        va = values(load, test)
        rows.exact(test, "allocated", int(area.value.valid), va.get("allocated"), area.rule,
                   area.value.reason)
        if area.value.valid:
            rows.exact(test, "aligned", 1, va.get("align_ok"), area.rule)
    sizes = sum(p.sizes) + 8
    meminfo = model.percpu_meminfo_delta_kb(sizes)
    held = None if obs.held is None else \
        obs.held.meminfo.kb("Percpu") - obs.baseline.meminfo.kb("Percpu")
    rows.check("meminfo", "ΔPercpu (kB)", meminfo, held)
    gone = values(obs.unload, "freed_all")
    rows.exact("freed_all", "areas freed", len(p.sizes), gone.get("areas"),
               "mm/percpu.c:free_percpu()")
    rows.exact("freed_all", "DEFINE_PER_CPU sum at exit", summed.value + 1,
               gone.get("static_sum"), summed.rule, "get_cpu_var() added 1 on one CPU")
    lifecycle_rows(rows, obs)
    return iter(rows.rows)
