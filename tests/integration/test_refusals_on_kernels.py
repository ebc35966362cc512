"""The kernel's common refusals, provoked on real kernels and explained (kmodlab.refusals):
hardened usercopy (a BUG, through ``kmodlab run``), a GPL-only symbol in a proprietary module
(modpost, through ``kmodlab build``), a misspelt and an invalid parameter, a module loaded
twice (-EEXIST)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import BuildError
from kmodlab.guest import Guest
from kmodlab.kernels.kernel import Kernel
from kmodlab.modules import build_source_dir
from kmodlab.refusals import ModuleFacts, explain
from kmodlab.runner import LoadedModule

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / "data"


def _target(kernel: Kernel) -> list[str]:
    return ["--arch", kernel.arch, "--kernel", f"{kernel.version[0]}.{kernel.version[1]}"]


def test_hardened_usercopy_is_explained_with_its_fix(kernel: Kernel,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from kmodlab.cli import main

    assert main(["run", str(DATA / "refusals" / "kml_usercopy"), *_target(kernel)]) == 2
    err = capsys.readouterr().err
    assert "kernel bug detected" in err
    assert ("hardened usercopy stopped a copy to user space from a 'kml_uc' object "
            "(offset 0, size 64)") in err, err[-3000:]
    assert "kmem_cache_create_usercopy(" in err
    assert "kml_usercopy.c:" in err                    # and where, in the module's own source


def test_a_gpl_only_symbol_in_a_proprietary_module_is_explained(kernel: Kernel) -> None:
    with pytest.raises(BuildError) as exc:
        build_source_dir(DATA / "refusals" / "kml_gplonly", kernel)
    message = str(exc.value)
    assert ("debugfs_create_dir is exported GPL-only (EXPORT_SYMBOL_GPL) and kml_gplonly.ko's "
            "license is not GPL-compatible") in message
    assert 'MODULE_LICENSE("GPL")' in message


@pytest.fixture(scope="module")
def booted(kernel: Kernel):
    with Guest(kernel) as g:
        yield g


def test_parameters_a_second_load_and_their_explanations(booted: Guest, kernel: Kernel) -> None:
    built = build_source_dir(DATA / "leaks" / "kml_percpu_leak", kernel, ["countt=1"])
    facts = ModuleFacts.read(built.ko_path, kernel.headers_dir)
    assert facts.license == "GPL" and "count" in facts.parameters
    module = LoadedModule(booted, built, leak_check=False)
    load = module.load()
    assert load.command.ok
    found = explain([load.log], facts)
    assert [e.id for e in found] == ["unknown_parameter"], load.log
    assert "no parameter 'countt'" in found[0].title and "count" in found[0].fix

    again = booted.run(f"insmod {module.guest_path}")
    assert again.exit_status != 0
    (twice,) = explain([again.output], facts)
    assert twice.id == "already_loaded", again.output
    assert module.unload().command.ok

    bad = booted.run(f"insmod {module.guest_path} count=many; dmesg | tail -n 5")
    ids = [e.id for e in explain([bad.output], facts)]
    assert "invalid_parameter" in ids, bad.output
    print(again.output, bad.output)          # the real lines, for the unit fixtures
