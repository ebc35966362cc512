"""The CLI starts fast by design: building its parser imports no feature code, and a guest on the
serial transport imports no SSH stack.  Checked by what a fresh interpreter has imported, never
by timing (benchmarks/cli_bench.py prints the times)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kmodlab import registry
from kmodlab.registry import names

# Never needed to print any command's help or to parse any command line.
HEAVY = ("yaml", "paramiko", "cryptography", "pydantic", "jinja2", "rich", "pexpect", "invoke",
         "elftools", "kmodlab.guest", "kmodlab.runner", "kmodlab.kernels", "kmodlab.modules",
         "kmodlab.model", "kmodlab.observe", "kmodlab.images", "kmodlab.qemu",
         "kmodlab.check.observation", "kmodlab.check.families", "kmodlab.claims.target",
         "kmodlab.labs.lab", "kmodlab.ci.workflows", "kmodlab.paths")

_PROBE = """
import contextlib, io, json, sys
from kmodlab.cli import main
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
print(json.dumps(sorted(sys.modules)))
"""


def _imported(argvs: list[list[str]], cache: Path) -> set[str]:
    env = {**os.environ, "KMODLAB_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", _PROBE.format(argvs=argvs)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def _every_help(parser) -> list[list[str]]:   # type: ignore[no-untyped-def]
    import argparse

    out = [["--help"]]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [[name, *rest] for rest in _every_help(sub)]
    return out


def test_help_imports_no_feature_code(tmp_path: Path) -> None:
    from kmodlab.cli import build_parser

    argvs = _every_help(build_parser())
    assert ["exec", "--help"] in argvs and ["lab", "grade", "--help"] in argvs
    _imported([["--help"]], tmp_path)     # the first run writes the registry names' copy
    assert _heavy(_imported([["--help"]], tmp_path)) == []
    assert _heavy(_imported(argvs, tmp_path)) == []


def test_without_the_names_copy_help_still_works(tmp_path: Path) -> None:
    """No copy (first run, or an unwritable cache): the registry is read, and help is the same."""
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    modules = _imported([["--help"], ["exec", "--help"]], tmp_path / "cache")
    assert "kmodlab.cli" in modules and "yaml" in modules


def test_a_serial_guest_does_not_import_the_ssh_stack(tmp_path: Path) -> None:
    probe = ("import json, sys, kmodlab.guest, kmodlab.kernels, kmodlab.images;"
             "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={**os.environ, "KMODLAB_CACHE": str(tmp_path)}).stdout
    loaded = set(json.loads(out))
    assert not {m for m in loaded if m.split(".")[0] in ("paramiko", "cryptography", "invoke")}
    assert "kmodlab.channel.ssh" not in loaded


def test_the_names_copy_equals_the_registry(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    from kmodlab.paths import cache_root

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(names, "_names", None)
    assert Path(names.cache_file()) == cache_root() / names.CACHE_NAME
    expected = (registry.arch_names(), registry.series_names(), registry.flavour_names(),
                registry.default_target().arch, registry.default_target().kernel,
                registry.default_flavour())

    def seen() -> tuple[object, ...]:
        monkeypatch.setattr(names, "_names", None)
        return (names.arch_names(), names.series_names(), names.flavour_names(),
                names.default_arch(), names.default_series(), names.default_flavour())

    assert seen() == expected                       # read from the registry, copy written
    copy = Path(names.cache_file())
    assert json.loads(copy.read_text())["names"]["series"] == list(registry.series_names())
    assert seen() == expected                       # read from the copy
    data = json.loads(copy.read_text())
    data["names"]["series"] = ["9.9"]
    copy.write_text(json.dumps(data))
    assert seen()[1] == ("9.9",)                    # the copy is what is read while it is current
    data["key"][3] += 1                             # series.yaml changed since: the copy is stale
    copy.write_text(json.dumps(data))
    assert seen() == expected
    copy.write_text("{not json")
    assert seen() == expected


def test_check_family_names_are_the_checks() -> None:
    from kmodlab.check.cli import FAMILY_NAMES
    from kmodlab.check.families import CHECKS

    assert FAMILY_NAMES == tuple(CHECKS)


def test_main_puts_the_signal_handlers_back(capsys: pytest.CaptureFixture[str]) -> None:
    """kmodlab.cli.main() run in-process (as tests and other programs do) must not leave its
    SIGTERM handler behind: in a pytest session it turned SIGTERM into a SystemExit that only
    failed the current test, and the killed CI run went on testing (measured)."""
    import signal

    from kmodlab.cli import main

    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert main(["kernels", "configs"]) == 0
    assert main(["exec", "--arch", "sparc", "--", "true"]) == 2      # an error path too
    capsys.readouterr()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_exec_keeps_each_word_of_a_command_one_word_in_the_guest() -> None:
    """``kmodlab exec -- sh -c 'a; b'`` used to reach the guest as ``sh -c a; b``: the shell ran
    ``sh -c a`` and then ``b``.  Several words are quoted; one word stays a shell line."""
    from kmodlab.cli import guest_command_line

    line = guest_command_line(["sh", "-c", "echo a; echo b"])
    assert shlex.split(line) == ["sh", "-c", "echo a; echo b"]
    assert guest_command_line(["cat /proc/slabinfo | head -3"]) == "cat /proc/slabinfo | head -3"
    assert guest_command_line(["echo", "it's"]) == "echo 'it'\"'\"'s'"
