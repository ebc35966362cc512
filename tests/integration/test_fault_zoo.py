"""The fault zoo: faulty modules never get an OK verdict, healthy controls always do.

Each folder of ``data/faults/`` is a bring-your-own module with a ``fault.yaml``:

* ``class``: ``false_pass`` (a faulty module) or ``control`` (a healthy one);
* ``kind``: the verdict it must get: ``ok`` for a control, else the class of fault the harness
  must name (``oops``, ``panic``, ``bug``, ``warning``, ``lockup``, ``hang``, ``flood``,
  ``ktap``, ``left_loaded``, ``load_error``, ``build_error``);
* ``path``: ``cli`` (default: ``kmodlab run DIR``, exactly as a user runs it) or ``library``
  (load, then ``pause`` seconds with the module loaded, then unload: what a pytest test does
  between its load and its unload);
* ``why``: what the module does.

A faulty module that gets OK is a *false pass*, a control that does not is a *false alarm*;
both are recorded for the fault tally (tests/faultzoo.py).  A faulty module that fails with the
wrong kind is neither, but its test fails.  The leaks (kmalloc, vmalloc, caches, pages, per-CPU)
are the modules of test_leaks.py, tallied from there.

Narrow with ``--kmodlab-arch x86_64 --kmodlab-kernel 6.1`` and ``-k NAME``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import faultzoo
import pytest
import yaml

from kmodlab.errors import KmodlabError
from kmodlab.kernels.kernel import Kernel

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / "data" / "faults"
KINDS = ("ok", "oops", "panic", "bug", "warning", "lockup", "hang", "flood", "ktap",
         "left_loaded", "load_error", "build_error", "leak")


@dataclass(frozen=True)
class Fault:
    name: str
    cls: str
    kind: str
    path: str
    pause: float
    why: str

    @property
    def folder(self) -> Path:
        return DATA / self.name

    @property
    def module(self) -> str:
        return f"kmlz_{self.name}"

    @classmethod
    def load(cls, folder: Path) -> Fault:
        spec = yaml.safe_load((folder / "fault.yaml").read_text())
        fault = cls(folder.name, spec["class"], spec["kind"], spec.get("path", "cli"),
                    float(spec.get("pause", 0)), spec["why"])
        assert fault.cls in ("false_pass", "control"), fault
        assert fault.kind in KINDS and (fault.kind == "ok") == (fault.cls == "control"), fault
        assert fault.path in ("cli", "library"), fault
        return fault


CATALOGUE = [Fault.load(p.parent) for p in sorted(DATA.glob("*/fault.yaml"))]


# --------------------------------------------------------------------------- reading verdicts

_RATE = re.compile(r"\d[\d,.]*\s*(?:[kKM]i?B|bytes|lines?|messages?)\s*(?:/\s*s\b|per second)")


def kinds_of(ok: bool, text: str) -> set[str]:
    """The kinds of fault a verdict (the run's output, or the error it raised) names."""
    if ok:
        return {"ok"}
    found: set[str] = set()
    found.update(re.findall(r"kernel (\w+) detected on the console", text))
    for reported in re.findall(r"the kernel reported ([\w, ]+)", text):
        found.update(k.strip() for k in reported.split(","))
    if re.search(r"no answer from the guest within|guest state: hung|timed out", text):
        found.add("hang")
    if "failed to build" in text:
        found.add("build_error")
    if "KTAP did not pass" in text:
        found.add("ktap")
    if "rmmod failed" in text or "left loaded" in text or "still loaded" in text:
        found.add("left_loaded")
    if "insmod failed" in text:
        found.add("load_error")
    if "leaked:" in text:
        found.add("leak")
    if re.search(r"\bflood", text):
        found.add("flood")
    return found or {"unclassified"}


@dataclass
class Verdict:
    ok: bool
    text: str

    @property
    def kinds(self) -> set[str]:
        return kinds_of(self.ok, self.text)


def run_cli(fault: Fault, kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> Verdict:
    from kmodlab.cli import main

    capsys.readouterr()
    rc = main(["run", str(fault.folder), "--arch", kernel.arch, "--kernel", kernel.release])
    out, err = capsys.readouterr()
    return Verdict(rc == 0, out + "\n" + err)


def run_library(fault: Fault, kernel: Kernel) -> Verdict:
    from kmodlab.guest import Guest
    from kmodlab.modules import build_source_dir
    from kmodlab.runner import LoadedModule, ModuleRun

    built = build_source_dir(fault.folder, kernel)
    try:
        with Guest(kernel) as guest:
            module = LoadedModule(guest, built)
            load = module.load()
            unload = None
            if module.loaded:
                guest.run(f"sleep {fault.pause:g}", timeout=fault.pause + 60)
                unload = module.unload()
            run = ModuleRun(built, load, unload)
    except KmodlabError as exc:
        return Verdict(False, str(exc))
    events = "\n".join(e.excerpt for phase in (run.load, run.unload) if phase is not None
                       for e in phase.complaints)
    return Verdict(run.ok, f"{run.verdict}\n{events}")


# --------------------------------------------------------------------------- the zoo

@pytest.mark.fault("false_pass")
@pytest.mark.parametrize("fault", CATALOGUE, ids=[f.name for f in CATALOGUE])
def test_fault_zoo(fault: Fault, kernel: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    verdict = run_cli(fault, kernel, capsys) if fault.path == "cli" else run_library(fault, kernel)
    shown = f"{fault.name} ({fault.why}): verdict {sorted(verdict.kinds)}\n{verdict.text[-3000:]}"
    if fault.cls == "control":
        faultzoo.record("false_alarm", int(not verdict.ok))
        assert verdict.ok, f"false alarm: {shown}"
        return
    faultzoo.record("false_pass", int(verdict.ok))
    assert not verdict.ok, f"FALSE PASS: {shown}"
    assert fault.kind in verdict.kinds, f"expected {fault.kind}: {shown}"
    if fault.kind == "flood":
        assert _RATE.search(verdict.text), f"a flood is reported with its rate: {shown}"
    if fault.path == "library":
        assert fault.module in verdict.text, f"the report names the module: {shown}"


def test_the_catalogue_covers_every_kind() -> None:
    """Every kind the zoo reads has a module, and there are controls (no QEMU)."""
    kinds = {f.kind for f in CATALOGUE}
    assert kinds >= set(KINDS) - {"leak"}, set(KINDS) - {"leak"} - kinds   # leaks: test_leaks.py
    assert sum(f.cls == "control" for f in CATALOGUE) >= 2
    for fault in CATALOGUE:
        assert (fault.folder / "Kbuild").read_text().strip() == f"obj-m := {fault.module}.o"
        assert (fault.folder / f"{fault.module}.c").is_file()


@pytest.mark.parametrize("text, ok, kinds", [
    ("m on k: OK", True, {"ok"}),
    ("kmodlab: error: kernel oops detected on the console\n(guest state: ready -> crashed)",
     False, {"oops"}),
    ("FAILED: phase load: the kernel reported warning, lockup", False, {"warning", "lockup"}),
    ("no answer from the guest within 60.0 s while running insmod\n(guest state: hung)", False,
     {"hang"}),
    ("FAILED: phase load: KTAP did not pass", False, {"ktap"}),
    ("FAILED: rmmod failed (exit 1)", False, {"left_loaded"}),
    ("FAILED: insmod failed (exit 22); unload not attempted", False, {"load_error"}),
    ("FAILED: leaked: 1000 objects in kmalloc-4k (4,000 KiB)", False, {"leak"}),
    ("something else went wrong", False, {"unclassified"}),
])
def test_kinds_of_verdicts(text: str, ok: bool, kinds: set[str]) -> None:
    assert kinds_of(ok, text) == kinds
