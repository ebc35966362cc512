"""Claims about per-CPU variables (the percpu family in a guest with two CPUs)."""

from __future__ import annotations

from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, int_value, register
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.model import Model

R_COPIES = ("mm/percpu.c:pcpu_alloc() (one unit per possible CPU, per_cpu_ptr() = base + the "
            "CPU's unit offset) + include/linux/percpu-defs.h:this_cpu_add()")


@register
class PercpuCopyPerCpu(Judge):
    """"Each processor gets its own copy of a per-CPU variable"."""

    name = "percpu_copy_per_cpu"

    def model(self, target: ModelTarget, *, cpus: int, increments: int, **_: Any) -> Finding:
        m = Model.for_kernel(target.kernel, ncpus=cpus) if target.kernel is not None \
            else Model(target.arch, target.series, ncpus=cpus)
        copies = m.alloc_percpu(m.params.pointer_size).value.copies
        total = m.percpu_sum([increments] * copies)
        return Finding("true", f"{copies} copies, sum {total.value}",
                       f"yes: with {cpus} CPUs alloc_percpu() and DEFINE_PER_CPU give {copies} "
                       f"copies; {increments} added on each CPU reads {increments} in each copy "
                       f"and {total.value} summed over them", R_COPIES,
                       short="yes: one copy per possible CPU; a total is the sum of the copies")

    def measured(self, target: ModelTarget, obs: Observations, *, probe: str, cpus: int,
                 increments: int, **_: Any) -> Finding | None:
        total = obs.values(probe, "percpu_sum")
        if not total:
            return None
        copies = [v for t, v in obs.tests(probe).items() if t.startswith("percpu_cpu")]
        each = [int_value(v, "dynamic") for v in copies]
        possible = int_value(total, "possible_cpus")
        summed = int_value(total, "dynamic")
        ok = (possible == cpus and len(copies) == cpus
              and all(e == increments for e in each) and summed == increments * cpus)
        return Finding("true" if ok else "false", f"{len(copies)} copies, sum {summed}",
                       f"{len(copies)} copies of the alloc_percpu() counter ({possible} possible "
                       f"CPUs), holding {each}; their sum {summed}",
                       f"{probe}/percpu_cpuN dynamic + percpu_sum", ok)
