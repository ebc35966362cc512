"""run_check/check_family plumbing and the ``kmodlab check`` command, without a guest: the
guest-facing steps (observe, provision, run_check) are replaced by recorded observations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from kmodlab.check import cli as check_cli
from kmodlab.check import run as check_run
from kmodlab.check.families import CHECKS
from kmodlab.check.observation import Observation, Probe
from kmodlab.check.replay import load_observation
from kmodlab.check.report import CheckReport, FamilyResult
from kmodlab.check.rows import CheckRow, Rows
from kmodlab.cli import build_parser, main
from kmodlab.errors import BuildError, ConfigError
from kmodlab.model import Model

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "check" / "x86_64-6.1"
MODEL = Model("x86_64", "6.1", ncpus=1)


class SilentCheck:
    """A family check that compares nothing: must be reported as an error, never a pass."""

    FAMILY = "silent"

    @staticmethod
    def probes(model: Model) -> list[Probe]:
        return [Probe("percpu", "silent")]

    @staticmethod
    def compare(obs: Observation, model: Model) -> Iterator[CheckRow]:
        return iter(())


def test_a_family_with_no_rows_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = load_observation(RECORDED / "percpu.json.gz")
    monkeypatch.setattr(check_run, "observe", lambda guest, kernel, probe: recorded)
    result = check_run.check_family(None, None, MODEL, SilentCheck)  # type: ignore[arg-type]
    assert not result.rows and result.errors and "no rows" in result.errors[0]


def test_a_failing_probe_is_an_error_of_its_family(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(guest, kernel, probe):
        raise BuildError("kml_percpu failed to build")

    monkeypatch.setattr(check_run, "observe", broken)
    result = check_run.check_family(None, None, MODEL, CHECKS["percpu"])  # type: ignore[arg-type]
    assert result.errors == ["BuildError: kml_percpu failed to build"]


def test_recorded_family_runs_through_check_family(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = load_observation(RECORDED / "vmalloc.json.gz")
    seen: list[str] = []
    monkeypatch.setattr(check_run, "observe", lambda guest, kernel, probe: recorded)
    result = check_run.check_family(None, None, MODEL, CHECKS["vmalloc"],  # type: ignore[arg-type]
                                    on_probe=lambda p: seen.append(p.name),
                                    on_observation=lambda o: seen.append(o.module))
    assert seen == ["vmalloc", "kml_vmalloc"] and result.probes == ["vmalloc"]
    assert len(result.rows) >= 50 and not result.failed and not result.errors


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown family nope"):
        check_run.resolve_families(["kmalloc", "nope"])
    assert check_run.resolve_families(None) == list(CHECKS)
    assert check_run.resolve_families(["pages", "pages"]) == ["pages"]


def test_every_family_plans_probes_for_every_kernel() -> None:
    for arch in ("x86_64", "arm64"):
        for series in ("6.1", "6.12"):
            model = Model(arch, series)
            for name, check in CHECKS.items():
                probes = check.probes(model)
                assert probes and all(p.family == name for p in probes), (arch, series, name)


def test_the_cli_registers_check() -> None:
    args = build_parser().parse_args(["check", "kmalloc", "pages", "--arch", "arm64", "--kernel",
                                      "6.12", "--cpus", "2", "--json"])
    assert args.families == ["kmalloc", "pages"] and args.arch == "arm64" and args.cpus == 2
    assert args.func is check_cli.cmd_check


def _fake_report(failed: bool) -> CheckReport:
    rows = Rows("percpu")
    rows.exact("percpu_sum", "possible CPUs", 1, 2 if failed else 1, "cpumask.h")
    rep = CheckReport("x86_64", "6.1", "6.1.0-56-cloud-amd64", "6.1.192-2", 1, "Model(...)")
    rep.families.append(FamilyResult("percpu", rows.rows, ["percpu"]))
    return rep


@pytest.mark.parametrize("failed, code", [(False, 0), (True, 1)])
def test_cli_exit_status_and_json(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], failed: bool,
                                  code: int) -> None:
    import kmodlab.kernels

    monkeypatch.setattr(kmodlab.kernels, "provision",
                        lambda arch, series, flavour: SimpleNamespace(arch=arch))
    monkeypatch.setattr(check_run, "run_check", lambda *a, **k: _fake_report(failed))
    assert main(["check", "percpu", "--json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["failed"] == int(failed) and data["exit_code"] == code
    assert main(["check", "percpu"]) == code
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 checks: ")


def test_cli_errors_exit_2(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "no_such_family"]) == 2
    assert "unknown family" in capsys.readouterr().err


def test_a_kernel_the_model_refuses_is_refused_before_a_guest_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`kmodlab check --config slub-debug`: slub_debug=FZPU changes every cache's layout, which
    the model does not cover; the check says so at once instead of booting a guest whose rows
    would all be judged against the wrong layouts."""
    from kmodlab.kernels.kernel import Kernel
    from kmodlab.model.errors import ModelError

    (tmp_path / "config").write_text("CONFIG_SLUB=y\n")
    kernel = Kernel(arch="x86_64", series="6.1", flavour="cloud", release="6.1.0-57-cloud-amd64",
                    package_version="v", root=tmp_path, image=tmp_path, vmlinux=None,
                    config=tmp_path / "config", system_map=tmp_path, modules_dir=tmp_path,
                    headers_dir=tmp_path, config_names=("slub-debug",),
                    boot_params=("slub_debug=FZPU",))
    started = []
    monkeypatch.setattr(check_run, "Guest", lambda *a, **k: started.append(a))
    with pytest.raises(ModelError, match="boots with slub_debug=FZPU"):
        check_run.run_check(kernel, ["kmalloc"])
    assert not started
