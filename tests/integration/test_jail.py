"""Hostile lab submissions compiled for real, in the build jail: no host file leaks or shows.

Every route by which a compiler, an assembler or make can be made to read a file is tried
against a canary file created outside the build folder (a random token nobody else has), and
against ``/etc/passwd``.  No byte of either may reach the .ko, the build output, the build log or
any file the build wrote; and a probe must not tell whether a host file exists: a build
naming the canary behaves exactly like one naming a file that does not exist.

The hostile sources are ``data/jail/*.c`` (snippets appended to the kmalloc_waste solution).
Each runs twice: with every layer (scanning and the assembler guard first: friendly messages)
and with the jail alone (scanning switched off), since the jail is the guarantee.  These tests
compile only (no QEMU), for the plugin's kernel matrix (``--kmodlab-arch``/``--kmodlab-kernel``).
"""

from __future__ import annotations

import os
import secrets
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faultzoo
import pytest

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import sandbox
from kmodlab.labs.errors import SubmissionRejected
from kmodlab.labs.lab import load_lab
from kmodlab.labs.sandbox import BuildOutcome, Intake, build_submission, take_submission

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "jail"
LAB = load_lab("kmalloc_waste")
SOLUTION = (LAB.solution_dir / "waste.c").read_text()
ATTACKS = sorted(p.stem for p in DATA.glob("*.c"))
PASSWD_LINES = [ln.encode() for ln in Path("/etc/passwd").read_text().splitlines() if len(ln) >= 12]
LAYERS = ["all-layers", "jail-only"]


@dataclass(frozen=True)
class Canary:
    """A host file outside the build folder, and a path of the same length that does not exist."""

    path: Path
    absent: Path
    token: bytes

    @property
    def secrets(self) -> list[bytes]:
        return [self.token, *PASSWD_LINES]


@pytest.fixture(scope="session")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Canary:
    folder = tmp_path_factory.mktemp("kmlcanary")
    token = f"KMODLAB_CANARY_{secrets.token_hex(16)}"
    secret = folder / "secret.h"
    # Valid C (so that an unjailed #include would compile it into the .ko) and valid assembly.
    secret.write_text(f'static const char kml_canary[] __attribute__((used)) = "{token}";\n'
                      f"/* {token} */\n")
    return Canary(secret, folder / "absent.h", token.encode())


@dataclass
class Built:
    outcome: BuildOutcome
    work: Path
    log: str

    @property
    def ko(self) -> bytes:
        return self.outcome.built.ko_path.read_bytes() if self.outcome.built else b""


def build(kernel: Kernel, work: Path, source: str, *, scan: bool,
          monkeypatch: pytest.MonkeyPatch | None = None, **extra: bytes) -> Built:
    """Build ``source`` as waste.c (``extra``: more files in the build folder)."""
    intake = Intake({"waste.c": source.encode(), **extra})
    with pytest.MonkeyPatch.context() as mp:
        if not scan:
            mp.setattr(sandbox, "scan_submission", lambda intake: None)
        outcome = build_submission(LAB, intake, kernel, {}, work, cache=work / "cache")
    log = work / f"build-{kernel.label}.log"
    return Built(outcome, work, log.read_text(errors="replace") if log.exists() else "")


def hostile(attack: str, path: str) -> str:
    return SOLUTION + "\n" + (DATA / f"{attack}.c").read_text().replace("@PATH@", path)


def files_written(folder: Path) -> Iterator[tuple[Path, bytes]]:
    """Every regular file under ``folder``, never following a link the build may have made."""
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            p = Path(root) / name
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                yield p, p.read_bytes()


def leaked_bytes(data: bytes, secret_list: list[bytes]) -> int:
    """How many host bytes ``data`` holds: each occurrence of a secret counts its length."""
    return sum(data.count(secret) * len(secret) for secret in secret_list)


def assert_no_leak(built: Built, secret_list: list[bytes]) -> None:
    where = {"output": built.outcome.output.encode(), "log": built.log.encode(), "ko": built.ko}
    where.update((str(p), data) for p, data in files_written(built.work))
    faultzoo.record("host_bytes_leaked",
                    sum(leaked_bytes(data, secret_list) for data in where.values()))
    for name, data in where.items():
        for secret in secret_list:
            assert secret not in data, f"host file content leaked into {name}"


_builds: dict[tuple[str, str, str, str], Built] = {}


def cached_build(kernel: Kernel, tmp_path_factory: pytest.TempPathFactory, attack: str,
                 layer: str, path: str) -> Built:
    """Builds shared by the tests below (one per kernel, attack, layer and path)."""
    key = (kernel.label, attack, layer, path)
    if key not in _builds:
        work = tmp_path_factory.mktemp(f"{attack}-{layer}")
        _builds[key] = build(kernel, work, hostile(attack, path), scan=layer == "all-layers")
    return _builds[key]


# ------------------------------------------------------------------------------ the baseline
def test_the_lab_solution_builds_in_the_jail(kernel: Kernel, tmp_path: Path) -> None:
    built = build(kernel, tmp_path, SOLUTION, scan=True)
    assert built.outcome.ok, built.outcome.output
    ko = built.outcome.built.ko_path
    assert f"vermagic={kernel.release} ".encode() in built.ko
    # The .ko is a copy outside the folder the build could write to.
    assert ko.parent != built.outcome.built.build_dir and not ko.is_symlink()
    # Paths in the .ko are the jail's, not the host's.
    for host_path in (str(tmp_path), str(Path.home()), str(kernel.root)):
        assert host_path.encode() not in built.ko
    assert b"/kmodlab/submission" in built.ko or b"waste.c" in built.ko
    # The cache hit serves the same module without building.
    again = build_submission(LAB, Intake({"waste.c": SOLUTION.encode()}), kernel, {}, tmp_path,
                             cache=tmp_path / "cache")
    assert again.cached and again.built and again.built.ko_path.read_bytes() == built.ko


# ------------------------------------------------------------------------------ hostile sources
@pytest.mark.fault("host_leak")
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("target", ["canary", "passwd"])
def test_hostile_source_leaks_nothing(kernel: Kernel, canary: Canary, attack: str, layer: str,
                                      target: str,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    path = str(canary.path) if target == "canary" else "/etc/passwd"
    built = cached_build(kernel, tmp_path_factory, attack, layer, path)
    assert_no_leak(built, canary.secrets)
    if attack == "has_include":
        assert b"KML_PROBE_FOUND" not in built.ko
        assert built.outcome.rejected or b"KML_PROBE_ABSENT" in built.ko
    elif layer == "jail-only":
        # Nothing to read: every other route fails to compile (gcc 12 has no #embed either).
        assert not built.outcome.ok, built.outcome.output


@pytest.mark.fault("host_leak")
@pytest.mark.parametrize("attack", ATTACKS)
def test_a_host_file_is_indistinguishable_from_a_missing_one(
        kernel: Kernel, canary: Canary, attack: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Same outcome, same (redacted) output, same module, whether the file exists or not."""
    assert len(str(canary.path)) == len(str(canary.absent))
    present = cached_build(kernel, tmp_path_factory, attack, "jail-only", str(canary.path))
    absent = cached_build(kernel, tmp_path_factory, attack, "jail-only", str(canary.absent))
    assert present.outcome.ok == absent.outcome.ok
    shown = present.outcome.output.replace(canary.path.name, canary.absent.name)
    assert shown == absent.outcome.output
    assert module_sections(present.ko) == module_sections(absent.ko)


def module_sections(ko: bytes) -> dict[str, bytes]:
    """The sections of an ELF64 little-endian .ko but .BTF (pahole's output for 6.12's module
    BTF varies from one build of the same source to the next, jail or not)."""
    if not ko:
        return {}
    shoff, = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    out = {}
    for sh_name, sh_type, _, _, offset, size in headers:
        name = ko[names_at + sh_name:ko.index(b"\0", names_at + sh_name)].decode()
        if name != ".BTF" and sh_type != 8:                                 # 8: SHT_NOBITS
            out[name] = ko[offset:offset + size]
    return out


@pytest.mark.fault("host_leak")
def test_has_include_sees_the_build_but_not_the_host(kernel: Kernel, canary: Canary,
                                                     tmp_path: Path) -> None:
    """The probe works (it finds the lab's own header and the kernel's), and finds nothing else."""
    seen = {}
    for name, path in [("own", "kmodlab_ktap.h"), ("kernel", "linux/slab.h"),
                       ("canary", str(canary.path)), ("passwd", "/etc/passwd"),
                       ("proc", "/proc/self/environ"),
                       ("home", str(kernel.root / "kernel.json")), ("test", __file__),
                       ("dotdot", f"../build-{kernel.label}.log")]:
        built = build(kernel, tmp_path / name, hostile("has_include", path), scan=False)
        assert built.outcome.ok, built.outcome.output
        seen[name] = b"KML_PROBE_FOUND" in built.ko
    assert seen == {"own": True, "kernel": True, "canary": False, "passwd": False,
                    "proc": False, "home": False, "test": False, "dotdot": False}


@pytest.mark.fault("host_leak")
@pytest.mark.parametrize("path", ["/proc/self/environ", "/proc/1/cmdline", "/dev/stdin",
                                  "/etc/shadow", "/root/.bash_history"])
def test_incbin_of_process_and_system_files_fails(kernel: Kernel, path: str,
                                                  tmp_path: Path) -> None:
    built = build(kernel, tmp_path, hostile("incbin_irp", path), scan=True)
    assert not built.outcome.ok
    faultzoo.record("host_bytes_leaked", leaked_bytes(built.log.encode(), [b"PATH="]))
    assert b"PATH=" not in built.log.encode()


# ------------------------------------------------------------------------------ links
@pytest.mark.fault("host_leak")
def test_a_symlinked_submission_file_is_refused(canary: Canary, tmp_path: Path) -> None:
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "waste.c").symlink_to(canary.path)
    with pytest.raises(SubmissionRejected, match="symbolic link") as exc:
        take_submission(LAB, folder)
    assert canary.token.decode() not in str(exc.value)


# ------------------------------------------------------------------------------ make
@pytest.mark.fault("host_leak")
def test_the_submissions_own_makefile_and_kbuild_are_ignored(kernel: Kernel, canary: Canary,
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "waste.c").write_text(SOLUTION)
    rule = f"$(warning LEAK[$(shell cat {canary.path} /etc/passwd)])\n"
    for name in ("Makefile", "Kbuild", "GNUmakefile", "makefile"):
        (folder / name).write_text(rule + "all:\n\tcat /etc/passwd\n")
    intake = take_submission(LAB, folder)
    assert set(intake.files) == {"waste.c"}
    outcome = build_submission(LAB, intake, kernel, {}, tmp_path / "work")
    assert outcome.ok, outcome.output
    built = Built(outcome, tmp_path / "work",
                  (tmp_path / "work" / f"build-{kernel.label}.log").read_text())
    assert "LEAK[" not in built.log
    assert_no_leak(built, canary.secrets)


@pytest.mark.fault("host_leak")
def test_shell_commands_reaching_make_run_in_the_jail(kernel: Kernel, canary: Canary,
                                                      tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Suppose student text did reach make (the grader writes the Kbuild, so this injects it):
    its $(shell ...) runs, but in the jail: no host files, no network, links go nowhere."""
    poison = "\n".join([
        f"$(warning KML-CANARY[$(shell cat {canary.path} 2>&1)])",
        "$(warning KML-PASSWD[$(shell cat /etc/passwd 2>&1)])",
        "$(warning KML-ROOT[$(shell ls / 2>&1)])",
        "$(warning KML-NET[$(shell bash -c 'exec 3<>/dev/tcp/1.1.1.1/53' 2>&1)])",
        # links made during the build, for the host to follow afterwards
        f"$(shell ln -sf {canary.path} $(src)/kml_link.h)",
        "$(shell ln -sf /etc/passwd $(src)/kml_passwd.h)",
        # ...and a watcher that swaps the finished .ko for a link to the canary (it dies with
        # the jail; it usually wins the race on kernels without module BTF)
        ("$(shell (while :; do if [ -s $(src)/kml_waste.ko ] && [ ! -L $(src)/kml_waste.ko ]; "
         f"then ln -sf {canary.path} $(src)/kml_waste.ko; fi; done) >/dev/null 2>&1 &)"),
        "",
    ])
    real = sandbox.kbuild_text
    monkeypatch.setattr(sandbox, "kbuild_text", lambda lab, guard: real(lab, guard) + poison)
    built = build(kernel, tmp_path, SOLUTION, scan=True)
    assert "KML-CANARY[cat: " in built.log and "No such file or directory" in built.log
    assert "KML-PASSWD[cat: /etc/passwd: No such file or directory]" in built.log
    root = built.log.split("KML-ROOT[", 1)[1].split("]", 1)[0].split()
    # /proc holds only the constant stand-in for /proc/self/maps (7.x objtool needs it)
    assert sorted(root) == ["bin", "dev", "etc", "kmodlab", "lib", "lib64", "proc", "tmp", "usr"]
    assert "Network is unreachable" in built.log.split("KML-NET[", 1)[1].split("]", 1)[0]
    assert_no_leak(built, canary.secrets)
    # Whichever way the race with the watcher went, the module (and its cache entry) is not
    # the canary: a .ko that became a link is never followed.
    if (tmp_path / f"build-{kernel.label}" / "kml_waste.ko").is_symlink():
        assert not built.outcome.ok
        assert "did not produce a regular .ko" in built.outcome.output or \
            "Error" in built.outcome.output
    cached = list((tmp_path / "cache").glob("*/kml_waste.ko"))
    for ko in [*cached, *([built.outcome.built.ko_path] if built.outcome.built else [])]:
        assert canary.token not in ko.read_bytes() and not ko.is_symlink()
    for link in ("kml_link.h", "kml_passwd.h"):
        assert (tmp_path / f"build-{kernel.label}" / link).is_symlink()   # made, never read


# ------------------------------------------------------------------------------ output
def test_megabytes_of_compiler_output_stay_bounded(kernel: Kernel, tmp_path: Path) -> None:
    flood = "\n".join([
        '#define KML_W0 _Pragma("GCC warning \\"kmodlab output flood kmodlab output flood\\"")',
        *(f"#define KML_W{i} " + " ".join([f"KML_W{i - 1}"] * 10) for i in range(1, 5)),
        "static void kml_flood(void) { " + " ".join(["KML_W4"] * 8) + " }",
        "",
    ])
    t0 = time.monotonic()
    built = build(kernel, tmp_path, SOLUTION + flood, scan=True)
    log_bytes = (tmp_path / f"build-{kernel.label}.log").stat().st_size
    assert log_bytes > 2 << 20, "the flood did not flood"
    assert log_bytes <= 64 << 20                      # RLIMIT_FSIZE
    assert len(built.outcome.output) <= sandbox.OUTPUT_BYTES + 200
    assert built.outcome.output.count("\n") <= sandbox.OUTPUT_LINES + 2
    assert time.monotonic() - t0 < LAB.spec.timeouts.build + 30


# ------------------------------------------------------------------------------ the jail itself
@pytest.mark.fault("host_leak")
def test_the_jail_holds_no_host_files_and_dies_at_the_timeout(kernel: Kernel, canary: Canary,
                                                               tmp_path: Path) -> None:
    from kmodlab.labs.jail import FAKE_MAPS, JAIL_SUBMISSION, Mount, require_jail, run_in_jail

    build_dir = tmp_path / "b"
    build_dir.mkdir()
    jail = require_jail(kernel).with_mounts(Mount(str(build_dir), JAIL_SUBMISSION, "rw"),
                                            chdir=JAIL_SUBMISSION)
    script = "\n".join([
        ("for d in / /etc /etc/alternatives /tmp /dev /kmodlab /kmodlab/kernel/usr /proc "
         '/proc/self; do echo "[$d] $(ls -A $d | tr "\\n" " ")"; done'),
        'echo "MAPS[$(cat /proc/self/maps)]"',
        "env | sort",
        f"cat {canary.path} /etc/passwd /proc/self/status 2>&1",
        "for p in / /usr /usr/bin /kmodlab/kernel/usr/src /etc; do touch $p/kml 2>&1; done",
        "touch /tmp/kml && touch /kmodlab/submission/kml && echo WRITABLE-OK",
        "echo UID=$(id -u)",
    ])
    os.environ["KMODLAB_HOST_SECRET"] = canary.token.decode()
    try:
        run = run_in_jail(jail, ["/bin/sh", "-c", script], tmp_path / "log", 60)
    finally:
        del os.environ["KMODLAB_HOST_SECRET"]
    out = (tmp_path / "log").read_text()
    assert run.started and run.returncode == 0, out
    faultzoo.record("host_bytes_leaked", leaked_bytes(out.encode(), canary.secrets))
    assert canary.token.decode() not in out and "root:x:0:0" not in out
    listing = {ln.split("]", 1)[0][1:]: ln.split("]", 1)[1].split()
               for ln in out.splitlines() if ln.startswith("[/")}
    assert listing["/"] == ["bin", "dev", "etc", "kmodlab", "lib", "lib64", "proc", "tmp", "usr"]
    # no procfs: only the fixed stand-in objtool needs, never the host's process or CPU data
    assert listing["/proc"] == ["self"] and listing["/proc/self"] == ["maps"]
    assert f"MAPS[{FAKE_MAPS.strip()}]" in out
    assert listing["/etc"] == ["alternatives"] and listing["/etc/alternatives"] == ["awk"]
    assert listing["/tmp"] == [] and listing["/kmodlab"] == ["kernel", "submission"]
    assert listing["/dev"] == ["full", "null", "random", "urandom", "zero"]
    assert listing["/kmodlab/kernel/usr"] == ["lib", "src"]
    env_names = {ln.split("=", 1)[0] for ln in out.splitlines() if "=" in ln and ln[0].isupper()}
    assert env_names <= {"PATH", "LC_ALL", "LANG", "HOME", "TMPDIR", "PWD", "SHLVL", "UID",
                         "OLDPWD", "_"}
    assert out.count("Read-only file system") == 5 and "WRITABLE-OK" in out
    assert (build_dir / "kml").exists()

    # A build that outlives its timeout is killed, with everything it started.
    tag = secrets.token_hex(4)
    sleeper = f"sleep 3{int(tag, 16) % 1000}.5"
    t0 = time.monotonic()
    run = run_in_jail(jail, ["/bin/sh", "-c", f"{sleeper} & {sleeper}; echo never"],
                      tmp_path / "log2", 1.0)
    assert run.returncode is None and time.monotonic() - t0 < 10
    assert "never" not in (tmp_path / "log2").read_text()
    time.sleep(0.3)
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if sleeper in cmd:
            left.append(cmd)
    assert left == []
