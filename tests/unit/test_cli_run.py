"""``kmodlab run``'s timeouts: given on the command line, validated, and carried to the runner
(the old command had neither option: insmod/rmmod always had 60 s)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Self

import pytest

from kmodlab import cli


def test_timeouts_are_validated_positive_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["run", "kmalloc", "--load-timeout", "7.5", "--command-timeout", "3"])
    assert (args.load_timeout, args.command_timeout) == (7.5, 3.0)
    defaults = parser.parse_args(["run", "kmalloc"])
    assert (defaults.load_timeout, defaults.command_timeout) == (60.0, 30.0)
    for bad in ("0", "-1", "soon", "inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "kmalloc", "--load-timeout", bad])
        assert "--load-timeout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "kmalloc", "--command-timeout", "0"])
    assert "must be a positive number of seconds" in capsys.readouterr().err


def test_the_timeouts_reach_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    import kmodlab.report
    import kmodlab.runner

    seen: dict[str, object] = {}

    class FakeGuest:
        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def run_module(guest, built, args=(), timeout=60.0, **kw):  # type: ignore[no-untyped-def]
        seen.update(timeout=timeout, **kw)
        return SimpleNamespace(ok=True, load=None, unload=None)

    monkeypatch.setattr(cli, "_provision", lambda args: None)
    monkeypatch.setattr(cli, "_build", lambda args, kernel: SimpleNamespace(module_name="kml"))
    monkeypatch.setattr(cli, "_guest", lambda args: FakeGuest())
    monkeypatch.setattr(kmodlab.runner, "run_module", run_module)
    monkeypatch.setattr(kmodlab.report, "render_run", lambda run: "OK")
    monkeypatch.setattr(cli, "_refusals", lambda built, kernel, texts: [])
    assert cli.main(["run", "kmalloc", "--load-timeout", "5", "--command-timeout", "9"]) == 0
    assert seen == {"timeout": 5.0, "command_timeout": 9.0}


def test_build_warnings_are_shown_and_werror_fails(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str],
                                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    import kmodlab.modules

    seen: dict[str, object] = {}
    built = SimpleNamespace(warnings=("x.c:3:5: warning: unused variable 'y'",),
                            log_path=tmp_path / "build.log", ko_path=tmp_path / "x.ko",
                            module_name="x", cached=False, seconds=1.0)

    def build_source_dir(path, kernel, args, *, module_name=None, force=False):  # type: ignore[no-untyped-def]
        seen.update(args=args, module_name=module_name, force=force)
        return built

    monkeypatch.setattr(cli, "_provision", lambda args: None)
    monkeypatch.setattr(kmodlab.modules, "build_source_dir", build_source_dir)
    assert cli.main(["build", str(tmp_path), "--rebuild", "--module", "x", "--", "a=1"]) == 0
    assert seen == {"args": ["a=1"], "module_name": "x", "force": True}
    err = capsys.readouterr().err
    assert "kmodlab: build warning: x.c:3:5: warning: unused variable 'y'" in err
    assert cli.main(["build", str(tmp_path), "--json"]) == 0
    assert '"warnings": [\n    "x.c:3:5: warning' in capsys.readouterr().out
    assert cli.main(["build", str(tmp_path), "--werror"]) == 2
    assert "1 build warning(s) and --werror" in capsys.readouterr().err
