"""Coherent DMA with and without CMA, decided by the kernel's config and its command line.

The cross-check (test_check.py) runs the dma family on each kernel as Debian boots it (arm64:
64 MiB of CMA; x86_64: none before 7.2, and 7.2's area has size 0).  Here the same check runs
in a guest booted with the other answer: ``cma=0`` where Debian reserves an area, ``cma=16M``
where its config has DMA CMA but no area, and ``cma=16M`` where the kernel has no DMA CMA at all
(the parameter then changes nothing, and the model must say so).  Zero failures each time, and
the model's answer must really be the other one."""

from __future__ import annotations

from kmodlab.check import render_check, run_check
from kmodlab.guest import Guest, GuestOptions
from kmodlab.kernels.kernel import Kernel
from kmodlab.model import Model


def _other_cmdline(model: Model) -> str:
    default = model.cma_total_kb().value
    return "cma=0" if default else "cma=16M"


def test_cma_on_the_command_line_moves_the_buffers(kernel: Kernel) -> None:
    model = Model.for_kernel(kernel)
    cmdline = _other_cmdline(model)
    with Guest(kernel, GuestOptions(extra_cmdline=(cmdline,))) as guest:
        report = run_check(kernel, ["dma"], guest=guest)
    assert report.exit_code == 0, render_check(report)
    rows = {(r.test, r.quantity): r for r in report.rows}
    big = rows[("dma_alloc_coherent_1050000", "from CMA")]
    expected = model.dma_alloc_coherent(1050000, 32, cmdline).value.from_cma
    assert big.observed is expected
    configured = model.params.dma_cma_mbytes is not None
    # where cma= exists, it flipped the answer; where it does not, nothing changed (no CMA)
    assert expected is (configured and cmdline == "cma=16M")
    total = rows[("meminfo", "CmaTotal (kB)")]
    assert total.observed == (16384 if expected else 0 if configured
                              else "no CmaTotal line (no CONFIG_CMA)")
