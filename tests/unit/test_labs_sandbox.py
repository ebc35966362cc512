"""Untrusted submissions on the host: intake, include scanning, limits, output redaction."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs.errors import SubmissionRejected
from kmodlab.labs.lab import load_lab
from kmodlab.labs.sandbox import (
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
