"""Untrusted submissions on the host: intake, include scanning, the jail's command line and
set-up checks, limits, output redaction.  (Builds in the real jail: tests/integration/test_jail.py.)"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import jail as jail_module
from kmodlab.labs import sandbox as sandbox_module
from kmodlab.labs.errors import SubmissionRejected
from kmodlab.labs.jail import (
    DEVICES,
    Jail,
    JailError,
    Mount,
    bindable_link_target,
    is_sensitive,
    kernel_source_tree,
    kernel_tree,
    require_bwrap,
    require_jail,
    run_in_jail,
    toolchain,
)
from kmodlab.labs.lab import load_lab
from kmodlab.labs.sandbox import (
    Intake,
    build_submission,
    collect_module,
    jail_make_argv,
    kbuild_text,
    prune_build_cache,
    redact_build_output,
    run_limited,
    scan_source,
    take_submission,
)

LAB = load_lab("kmalloc_waste")
GOOD = b'#include <linux/module.h>\n#include "kmodlab_ktap.h"\nint x;\n'


def submission(tmp_path: Path, **files: bytes) -> Path:
    folder = tmp_path / "student"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_takes_only_the_files_of_the_lab(tmp_path: Path) -> None:
    folder = submission(tmp_path, **{"waste.c": GOOD, "Makefile": b"all:\n\tcat /etc/passwd\n",
                                     "notes.c": b"hi", "kmodlab_ktap.h": b"#error mine\n"})
    (folder / "sub").mkdir()
    intake = take_submission(LAB, folder)
    assert set(intake.files) == {"waste.c"}
    notes = " ".join(intake.notes)
    assert "Makefile: ignored" in notes and "grader provides its own copy" in notes
    assert "notes.c: ignored" in notes and "sub/: ignored" in notes


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SubmissionRejected, match="missing file.*waste.c"):
        take_submission(LAB, submission(tmp_path, **{"other.c": GOOD}))


def test_symlink_to_a_host_file_is_refused(tmp_path: Path) -> None:
    folder = submission(tmp_path)
    os.symlink("/etc/passwd", folder / "waste.c")
    with pytest.raises(SubmissionRejected, match="symbolic link") as exc:
        take_submission(LAB, folder)
    assert "root:" not in str(exc.value)


def test_hard_link_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    folder = submission(tmp_path)
    os.link(secret, folder / "waste.c")
    with pytest.raises(SubmissionRejected, match="hard link") as exc:
        take_submission(LAB, folder)
    assert "top secret" not in str(exc.value)


def test_fifo_and_oversized_files(tmp_path: Path) -> None:
    folder = submission(tmp_path)
    os.mkfifo(folder / "waste.c")
    with pytest.raises(SubmissionRejected, match="not a regular file"):
        take_submission(LAB, folder)
    (folder / "waste.c").unlink()
    (folder / "waste.c").write_bytes(b"x" * (LAB.spec.limits.file_bytes + 1))
    with pytest.raises(SubmissionRejected, match="limit"):
        take_submission(LAB, folder)


def test_a_symlinked_submission_folder_is_refused(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "student")
    with pytest.raises(SubmissionRejected, match="not a folder"):
        take_submission(LAB, tmp_path / "student")


@pytest.mark.parametrize("line", [
    '#include "/etc/passwd"', "#include </etc/passwd>", '#include "../../etc/passwd.h"',
    "#include <linux/../../../etc/passwd.h>", '  #  include "/etc/shadow"',
    '%:include "/etc/passwd"', '??=include "/etc/passwd"', '#\\\ninclude "/etc/passwd"',
    '#include_next <linux/slab.h>', "#include SECRET_FILE", '#embed "/etc/passwd"',
    'asm(".incbin \\"/etc/passwd\\"");', '__asm__(".include \\"/etc/passwd\\"");',
    '#pragma GCC dependency "/etc/passwd"', '#line 1 "/etc/passwd"', '#include "mine.c"',
    '_Pragma("GCC dependency \\"/etc/passwd\\"")', '#include "~/x.h"',
])
def test_scanning_refuses_host_file_access(line: str) -> None:
    with pytest.raises(SubmissionRejected) as exc:
        scan_source("waste.c", f"int a;\n{line}\nint b;\n".encode())
    assert "waste.c:2" in str(exc.value) or "waste.c:" in str(exc.value)
    assert "root:" not in str(exc.value)


@pytest.mark.parametrize("source", [
    b'#include <linux/slab.h>\n#include "kmodlab_ktap.h"\n#include "lab/params.h"\n',
    b'/* #include "/etc/passwd" in a comment */\n// #include </etc/shadow>\nint x;\n',
    b'const char *s = "see /etc/passwd";\n',
])
def test_scanning_accepts_ordinary_code(source: bytes) -> None:
    scan_source("waste.c", source)


def test_generated_kbuild_ignores_the_student(tmp_path: Path) -> None:
    text = kbuild_text(LAB, tmp_path / "guard")
    assert "obj-m := kml_waste.o" in text and "kml_waste-y := waste.o" in text
    assert f"-B{tmp_path / 'guard'}/" in text


def _kernel(tmp_path: Path) -> Kernel:
    root = tmp_path / "k"
    return Kernel("x86_64", "6.1", "cloud", "6.1.0-56-cloud-amd64", "6.1.1", root, root / "img",
                  None, root / "config", root / "map", root / "mod",
                  root / "root/usr/src/linux-headers-6.1.0-56-cloud-amd64")


def test_redaction_keeps_only_the_submission(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    build = tmp_path / "work" / "build-x86_64-6.1"
    raw = "\n".join([
        f"make -C {kernel.headers_dir} M={build} modules",
        f"In file included from {build}/waste.c:3:",
        "/etc/passwd:1:5: error: expected '=' before ':' token",
        "    1 | root:x:0:0:root:/root:/bin/bash",
        "      |     ^",
        f"{build}/waste.c:10:1: error: unknown type name 'foo'",
        "   10 | foo bar;",
        "      | ^~~",
        (f"{kernel.root}/root/usr/src/linux-headers-6.1.0-56-common/include/linux/slab.h:5:1: "
         "note: declared here"),
        (f"make[1]: *** [{kernel.root}/root/usr/src/linux-headers-6.1.0-56-common/scripts/"
         f"Makefile.build:255: {build}/waste.o] Error 1"),
    ])
    text = redact_build_output(raw, build, kernel)
    assert "root:x:0:0" not in text and "/etc/passwd" not in text
    assert "submission/waste.c:10:1: error: unknown type name 'foo'" in text
    assert "   10 | foo bar;" in text
    assert "<kernel headers>/include/linux/slab.h:5:1: note" in text
    assert str(tmp_path) not in text
    assert "line(s) of build output not about your files omitted" in text


def test_limits_apply_to_the_child(tmp_path: Path) -> None:
    probe = ("import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0], "
             "resource.getrlimit(resource.RLIMIT_FSIZE)[0])")
    argv = [sys.executable, "-m", "kmodlab.labs.limited", f"--as={4 << 30}",
            f"--fsize={1 << 20}", "--", sys.executable, "-c", probe]
    rc, _ = run_limited(argv, tmp_path, tmp_path / "out.log", 60, dict(os.environ))
    assert rc == 0
    assert (tmp_path / "out.log").read_text().split() == [str(4 << 30), str(1 << 20)]


def test_output_is_bounded_by_the_file_size_limit(tmp_path: Path) -> None:
    flood = "import sys\nwhile True: sys.stdout.write('x' * 65536)\n"
    argv = [sys.executable, "-m", "kmodlab.labs.limited", f"--fsize={1 << 20}", "--",
            sys.executable, "-c", flood]
    rc, _ = run_limited(argv, tmp_path, tmp_path / "out.log", 60, dict(os.environ))
    assert rc != 0
    assert (tmp_path / "out.log").stat().st_size <= 1 << 20


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    argv = ["sh", "-c", "sleep 30 & sleep 30; echo never"]
    rc, _ = run_limited(argv, tmp_path, tmp_path / "out.log", 0.5, dict(os.environ))
    assert rc is None
    assert "never" not in (tmp_path / "out.log").read_text()


def test_build_cache_is_pruned_to_the_most_recent(tmp_path: Path) -> None:
    for i in range(5):
        entry = tmp_path / f"e{i}"
        entry.mkdir()
        os.utime(entry, (1000 + i, 1000 + i))
    assert prune_build_cache(tmp_path, keep=2) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e3", "e4"]


# ------------------------------------------------------------------------------ the jail
def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def _jail(tmp_path: Path) -> Jail:
    build = str(tmp_path / "build")
    return Jail((Mount("/usr/bin", "/usr/bin"), Mount(f"{build}/.g", "/kmodlab/submission/.g"),
                 Mount(build, "/kmodlab/submission", "rw"),
                 Mount("/k/usr/src", "/kmodlab/kernel/usr/src")),
                (("usr/bin", "/bin"), ("/usr/bin/mawk", "/etc/alternatives/awk")),
                chdir="/kmodlab/submission")


def test_jail_argv_unshares_everything_and_clears_the_environment(tmp_path: Path) -> None:
    argv = _jail(tmp_path).argv(["make", "-C", "/x"], bwrap="/usr/bin/bwrap", status_fd=7)
    assert argv[0] == "/usr/bin/bwrap"
    for flag in ("--unshare-all", "--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv[:argv.index("--")]
    assert "--share-net" not in argv and "--proc" not in argv and "--dev" not in argv
    assert argv[argv.index("--json-status-fd") + 1] == "7"
    env = dict(_pairs(argv, "--setenv"))
    assert env == {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "HOME": "/tmp",
                   "TMPDIR": "/tmp"}
    assert argv[argv.index("--"):] == ["--", "make", "-C", "/x"]
    assert argv[argv.index("--chdir") + 1] == "/kmodlab/submission"


def test_jail_argv_binds_only_the_build_folder_writable(tmp_path: Path) -> None:
    argv = _jail(tmp_path).argv(["true"])
    assert _pairs(argv, "--bind") == [(str(tmp_path / "build"), "/kmodlab/submission")]
    ro = _pairs(argv, "--ro-bind")
    assert ("/usr/bin", "/usr/bin") in ro
    # the guard, inside the writable folder, is bound read-only after (over) it
    assert argv.index(f"{tmp_path}/build/.g") > argv.index(str(tmp_path / "build"))
    assert [d for _, d in _pairs(argv, "--dev-bind")] == [f"/dev/{d}" for d in DEVICES]
    assert ("/usr/bin/mawk", "/etc/alternatives/awk") in _pairs(argv, "--symlink")
    # a private, bounded /tmp; the root tmpfs read-only once everything is in place
    i = argv.index("--tmpfs")
    assert argv[i + 1] == "/tmp" and argv[i - 2] == "--size" and int(argv[i - 1]) > 0
    assert argv.index("--remount-ro") > max(i for i, a in enumerate(argv) if a.endswith("bind"))
    assert argv[argv.index("--remount-ro") + 1] == "/"


def test_jail_argv_needs_a_command(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        _jail(tmp_path).argv([])


def test_the_host_jail_holds_the_toolchain_and_no_host_data() -> None:
    """The real host's toolchain mounts: nothing from /etc, /root, /home, /work, /var..."""
    mounts, links = toolchain(["aarch64-linux-gnu"])
    for m in mounts:
        assert m.mode == "ro" and not is_sensitive(m.source) and not is_sensitive(m.dest), m
        assert m.dest.startswith(("/usr/", "/bin", "/lib")), m
    assert any(m.dest == "/usr/bin" for m in mounts)
    assert all(link.startswith(("/bin", "/lib", "/etc/alternatives/")) for _, link in links)


def _fake_root(tmp_path: Path, merged: bool = True) -> Path:
    root = tmp_path / "root"
    for d in ("usr/bin", "usr/lib/x86_64-linux-gnu", "usr/lib/gcc/x86_64-linux-gnu/12",
              "usr/lib/python3/dist-packages", "usr/lib64", "usr/libexec/packagekitd",
              "usr/aarch64-linux-gnu/bin", "usr/share/doc", "etc/alternatives", "home/u"):
        (root / d).mkdir(parents=True)
    (root / "usr/bin/mawk").write_text("")
    (root / "etc/alternatives/awk").symlink_to("/usr/bin/mawk")
    (root / "usr/bin/awk").symlink_to("/etc/alternatives/awk")
    (root / "etc/alternatives/java").symlink_to("/usr/lib/jvm/java")
    (root / "usr/bin/java").symlink_to("/etc/alternatives/java")
    if merged:
        for top in ("bin", "lib", "lib64"):
            (root / top).symlink_to(f"usr/{top}")
    else:
        for top in ("bin", "lib/x86_64-linux-gnu", "lib64"):
            (root / top).mkdir(parents=True)
    return root


def test_toolchain_mounts_on_a_merged_usr_host(tmp_path: Path) -> None:
    root = _fake_root(tmp_path)
    mounts, links = toolchain(["aarch64-linux-gnu"], root=str(root))
    dests = sorted(m.dest for m in mounts)
    assert dests == ["/usr/aarch64-linux-gnu", "/usr/bin", "/usr/lib/gcc",
                     "/usr/lib/x86_64-linux-gnu", "/usr/lib64"]
    assert all(m.source == str(root) + m.dest for m in mounts)
    assert sorted(links) == [("/usr/bin/mawk", "/etc/alternatives/awk"), ("usr/bin", "/bin"),
                             ("usr/lib", "/lib"), ("usr/lib64", "/lib64")]
    # no cross toolchain: no /usr/<triplet>
    assert "/usr/aarch64-linux-gnu" not in {m.dest for m in toolchain([], root=str(root))[0]}


def test_a_release_roots_cross_compiler_brings_its_libexec(tmp_path: Path) -> None:
    """sid's gcc-16-aarch64-linux-gnu keeps cc1 in /usr/libexec/gcc-cross: without it the
    jailed cross compiler said "cannot execute 'cc1'"."""
    root = _fake_root(tmp_path)
    (root / "usr/libexec/gcc-cross/aarch64-linux-gnu/16").mkdir(parents=True)
    dests = {m.dest for m in toolchain(["aarch64-linux-gnu"], root=str(root))[0]}
    assert "/usr/libexec/gcc-cross" in dests


def test_the_jail_has_a_fixed_proc_self_maps_and_no_procfs(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """7.x objtool (tools/objtool/signal.c:read_stack_limit()) needs a "[stack]" line in
    /proc/self/maps; the jail gives it a constant file, never the host's procfs."""
    from kmodlab.labs.jail import FAKE_MAPS, PROC_SELF_MAPS, Jail, fake_proc_maps

    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path))
    mount = fake_proc_maps()
    assert mount.dest == PROC_SELF_MAPS and mount.mode == "ro"
    assert Path(mount.source).read_text() == FAKE_MAPS and "[stack]" in FAKE_MAPS
    argv = Jail((mount,)).argv(["true"])
    assert "--proc" not in argv
    assert argv[argv.index(mount.source) - 1] == "--ro-bind"


def test_toolchain_mounts_on_a_split_usr_host(tmp_path: Path) -> None:
    root = _fake_root(tmp_path, merged=False)
    mounts, links = toolchain([], root=str(root))
    assert {"/bin", "/lib", "/lib64"} <= {m.dest for m in mounts}
    assert [link for _, link in links] == ["/etc/alternatives/awk"]


def _fake_kernel(tmp_path: Path, release: str = "6.1.0-9-cloud-amd64") -> Kernel:
    root = tmp_path / "kern"
    usr = root / "root/usr"
    headers = usr / f"src/linux-headers-{release}"
    common = usr / "src/linux-headers-6.1.0-9-common"
    kbuild = usr / "lib/linux-kbuild-6.1"
    for d in (headers, common / "include/linux", kbuild / "scripts", kbuild / "tools"):
        d.mkdir(parents=True)
    (headers / "Makefile").write_text("include $(dir $(lastword $(MAKEFILE_LIST)))"
                                      "../linux-headers-6.1.0-9-common/Makefile\n")
    for tree in (headers, common):
        (tree / "scripts").symlink_to("../../lib/linux-kbuild-6.1/scripts")
        (tree / "tools").symlink_to("../../lib/linux-kbuild-6.1/tools")
    (usr / "src/linux-kbuild-6.1").symlink_to("../lib/linux-kbuild-6.1")
    (common / "include/linux/a.h").write_text("")
    (common / "include/linux/b.h").symlink_to("a.h")
    (common / "include/linux/gone.h").symlink_to("never-there.h")    # dangling on the host too
    config = root / "config"
    config.write_text('CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"\n')
    return Kernel("x86_64", "6.1", "cloud", release, "6.1.1", root, root / "img", None, config,
                  root / "map", root / "mod", headers)


def test_a_provisioned_kernel_tree_is_relocated_with_its_links(tmp_path: Path) -> None:
    kernel = _fake_kernel(tmp_path)
    tree = kernel_tree(kernel)
    usr = (kernel.root / "root/usr").resolve()
    assert tree.mounts == (Mount(str(usr / "src"), "/kmodlab/kernel/usr/src"),
                           Mount(str(usr / "lib"), "/kmodlab/kernel/usr/lib"))
    assert tree.headers == "/kmodlab/kernel/usr/src/linux-headers-6.1.0-9-cloud-amd64"
    assert tree.problems == ()
    argv = jail_make_argv(kernel, tmp_path / "build")
    assert argv[:3] == ["make", "-C", tree.headers] and "M=/kmodlab/submission" in argv
    assert not any(str(tmp_path) in a for a in argv)


def test_a_kernel_tree_linking_out_of_the_jail_is_refused(tmp_path: Path) -> None:
    kernel = _fake_kernel(tmp_path, release="6.1.0-8-cloud-amd64")
    (kernel.headers_dir / "include").mkdir()
    (kernel.headers_dir / "include" / "pw.h").symlink_to("/etc/passwd")
    (kernel.headers_dir / "abs").symlink_to(kernel.headers_dir.parent)   # absolute: breaks
    tree = kernel_tree(kernel)
    assert len(tree.problems) == 2 and any("/etc/passwd" in p for p in tree.problems)
    with pytest.raises(JailError, match="symlinks that leave the build jail"):
        require_jail(kernel)


def test_a_custom_kernel_tree_is_bound_in_place_with_its_link_targets(tmp_path: Path) -> None:
    source = tmp_path / "linux"
    (source / "include").mkdir(parents=True)
    build = tmp_path / "obj"
    build.mkdir()
    (build / "source").symlink_to(source)
    (build / "Makefile").write_text("include ../linux/Makefile\n")
    kernel = dataclasses.replace(_kernel(tmp_path), headers_dir=build)
    tree = kernel_tree(kernel)
    assert tree.headers == str(build.resolve())
    assert {m.dest for m in tree.mounts} == {str(build.resolve()), str(source.resolve())}
    assert all(m.source == m.dest for m in tree.mounts) and tree.problems == ()


def _fake_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    bwrap = bindir / "bwrap"
    bwrap.write_text("#!/bin/bash\n" + script)
    bwrap.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return bwrap


def test_no_bwrap_no_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    which = shutil.which
    monkeypatch.setattr(jail_module.shutil, "which",
                        lambda name, *a, **k: None if name == "bwrap" else which(name, *a, **k))
    with pytest.raises(JailError, match="bubblewrap .bwrap. is not installed.*apt-get install "
                                        "bubblewrap"):
        require_bwrap()
    intake = Intake({"waste.c": GOOD})
    with pytest.raises(JailError):
        build_submission(LAB, intake, _fake_kernel(tmp_path, "6.1.0-7-cloud-amd64"), {},
                         tmp_path / "work")
    assert not list((tmp_path / "work").glob("**/*.ko"))


def test_bwrap_without_namespaces_refuses_with_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """E.g. a container without user namespaces: never an unjailed fallback."""
    marker = tmp_path / "ran-unjailed"
    _fake_bwrap(tmp_path, monkeypatch,
                "echo 'bwrap: No permissions to creating new namespace, likely because the "
                f"kernel does not allow non-privileged user namespaces' >&2\ntouch {marker}.no\n"
                "exit 1\n")
    kernel = _fake_kernel(tmp_path, "6.1.0-6-cloud-amd64")
    with pytest.raises(JailError, match="cannot create the build jail.*nothing was built"):
        build_submission(LAB, Intake({"waste.c": GOOD}), kernel, {}, tmp_path / "work")
    assert not marker.exists() and not (tmp_path / "work").exists()


def test_a_jail_that_fails_to_start_is_an_error_not_a_compile_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_bwrap(tmp_path, monkeypatch, "echo 'bwrap: Cannot mount tmpfs on /newroot' >&2\n"
                                       "exit 1\n")
    with pytest.raises(JailError, match="could not start the build jail.*mount tmpfs"):
        run_in_jail(_jail(tmp_path), ["true"], tmp_path / "log", 30)


def test_the_exit_status_comes_from_the_jailed_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in bwrap speaking its --json-status-fd protocol.
    _fake_bwrap(tmp_path, monkeypatch,
                'fd=$3\nwhile [ "$1" != "--json-status-fd" ]; do shift; done\nfd=$2\n'
                'echo \'{ "child-pid": 12 }\' >&"$fd"\necho \'{ "exit-code": 153 }\' >&"$fd"\n'
                "exit 153\n")
    run = run_in_jail(_jail(tmp_path), ["make"], tmp_path / "log", 30)
    assert run.started and run.returncode == 153


def test_collect_module_copies_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "m.ko").write_bytes(b"\x7fELF module")
    got = collect_module(tmp_path / "b", "m.ko", tmp_path / "out")
    assert got == tmp_path / "out" / "m.ko" and got.read_bytes() == b"\x7fELF module"


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo", "dir", "huge", "missing"])
def test_collect_module_never_follows_what_the_build_left(tmp_path: Path, kind: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("KMODLAB-SECRET\n")
    build = tmp_path / "b"
    build.mkdir()
    ko = build / "m.ko"
    if kind == "symlink":
        ko.symlink_to(secret)
    elif kind == "hardlink":
        os.link(secret, ko)
    elif kind == "fifo":
        os.mkfifo(ko)                   # would block a plain open()
    elif kind == "dir":
        ko.mkdir()
    elif kind == "huge":
        monkeypatch.setattr(sandbox_module, "MAX_KO_BYTES", 8)
        ko.write_bytes(b"x" * 9)
    assert collect_module(build, "m.ko", tmp_path / "out") is None
    assert not (tmp_path / "out").exists()


def test_redaction_maps_the_jail_paths(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    lines = [
        "make: Entering directory '/kmodlab/kernel/usr/src/linux-headers-6.1.0-56-cloud-amd64'",
        "In file included from /kmodlab/submission/waste.c:3:",
        "/kmodlab/submission/waste.c:3:10: fatal error: /etc/passwd: No such file or directory",
        "    3 | #include \"/etc/passwd\"",
        ("/kmodlab/kernel/usr/src/linux-headers-6.1.0-56-common/include/linux/slab.h:5:1: "
         "note: declared here"),
        "waste.c: Assembler messages:",
        "waste.c:9: Error: file not found: /etc/passwd",
        "/usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h:1:1: note: elsewhere",
    ]
    text = redact_build_output("\n".join(lines), tmp_path / "work" / "build", kernel)
    assert "submission/waste.c:3:10: fatal error: /etc/passwd: No such file" in text
    assert "<kernel headers>/include/linux/slab.h:5:1: note: declared here" in text
    assert "waste.c:9: Error: file not found: /etc/passwd" in text
    assert "/kmodlab" not in text and "stddef.h" not in text


@pytest.mark.parametrize(("path", "ok"), [
    ("/home/ann/linux", True), ("/srv/kernels/linux-6.1", True), ("/", False), ("/home", False),
    (str(Path.home()), False), ("/etc/ssl", False), ("/home/ann/.ssh", False),
    ("/usr/src/linux-source-6.1", True), ("/proc/self", False),
])
def test_which_link_targets_a_custom_kernel_may_bring_in(path: str, ok: bool) -> None:
    assert bindable_link_target(path) is ok


def test_a_custom_kernel_tree_linking_to_system_files_is_refused(tmp_path: Path) -> None:
    build = tmp_path / "obj2"
    build.mkdir()
    (build / "Makefile").write_text("")
    (build / "etc").symlink_to("/etc")
    kernel = dataclasses.replace(_kernel(tmp_path), headers_dir=build)
    assert kernel_tree(kernel).problems == (f"{build.resolve()}/etc -> /etc",)


def _built_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: Path) -> Kernel:
    """A kernel kmodlab built: its kbuild output folder in the cache links to its source."""
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    (source / "include/linux").mkdir(parents=True)
    (source / "include/linux/slab.h").write_text("")
    build = tmp_path / "cache/kernels/built-x/build"
    build.mkdir(parents=True)
    (build / "source").symlink_to(source)
    (build / "Makefile").write_text(f"include {source}/Makefile\n")
    return dataclasses.replace(_kernel(tmp_path), headers_dir=build, root=build.parent)


def test_a_built_kernel_brings_its_cached_source_tree_into_the_jail(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the source tree (in the hidden cache folder) was refused, so no lab could grade
    # on a --config kernel ("symlinks that leave the build jail").
    source = tmp_path / "cache/kernel-sources/6.1.192-3/linux"
    kernel = _built_kernel(tmp_path, monkeypatch, source)
    assert kernel_source_tree(kernel) == str(source.resolve())
    tree = kernel_tree(kernel)
    assert tree.problems == ()
    assert {m.dest for m in tree.mounts} == {str(kernel.headers_dir.resolve()),
                                             str(source.resolve())}
    raw = (f"{source}/include/linux/slab.h:5:1: note: declared here\n"
           f"{tmp_path}/work/build/t.c:3:1: error: boom\n")
    text = redact_build_output(raw, tmp_path / "work" / "build", kernel)
    assert "<kernel headers>/include/linux/slab.h:5:1" in text
    assert str(tmp_path) not in text and ".cache" not in text


def test_a_source_link_outside_the_cache_is_not_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = _built_kernel(tmp_path, monkeypatch, tmp_path / "elsewhere/.hidden/linux")
    assert kernel_source_tree(kernel) is None
    assert kernel_tree(kernel).problems       # a hidden folder outside the cache: refused


def test_a_kernel_tree_below_tmp_is_bound_on_the_private_tmp_not_hidden_by_it() -> None:
    # Before: --tmpfs /tmp came after the binds, so a built kernel in a cache under /tmp
    # (KMODLAB_CACHE=$(mktemp -d), as CI runs) vanished from the jail and no lab could build.
    jail = Jail((Mount("/usr/bin", "/usr/bin"), Mount("/tmp/c/kernels/b/build", "/tmp/c/kernels/b/build")))
    argv = jail.argv(["true"])
    tmpfs = argv.index("--tmpfs")
    bind = argv.index("/tmp/c/kernels/b/build")
    assert argv[tmpfs + 1] == "/tmp" and tmpfs < bind
    assert argv[argv.index("--remount-ro") + 1] == "/"
