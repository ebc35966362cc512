"""Cutting TODO regions out of a reference solution."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.labs.errors import SkeletonError
from kmodlab.labs.lab import list_labs, load_lab
from kmodlab.labs.skeleton import strip_todos, write_pack

SOLUTION = """\
int f(void)
{
\tint x;

\t/* TODO-BEGIN: compute x */
\tx = 42;
\t/* TODO-END: x = 0; */
\t// TODO-BEGIN: log it
\tpr_info("%d", x);
\t// TODO-END
\treturn x;
}
"""


def test_regions_become_todo_comments_and_stubs() -> None:
    text, regions = strip_todos(SOLUTION, "f.c")
    assert "x = 42" not in text and "pr_info" not in text
    assert "\t/* TODO: compute x */\n\tx = 0;\n" in text
    assert "\t/* TODO: log it */\n\treturn x;" in text
    assert [(r.begin_line, r.end_line, r.stub) for r in regions] == [(5, 7, "x = 0;"), (8, 10, "")]


@pytest.mark.parametrize("bad, message", [
    ("/* TODO-BEGIN: a */\n/* TODO-BEGIN: b */\n/* TODO-END */\n", "f.c:2: TODO-BEGIN inside"),
    ("/* TODO-END */\n", "f.c:1: TODO-END without"),
    ("/* TODO-BEGIN: a */\nx;\n", "f.c:1: TODO-BEGIN is never closed"),
    ("x; /* TODO-BEGIN: a */\n", "must be a comment alone"),
])
def test_malformed_markers(bad: str, message: str) -> None:
    with pytest.raises(SkeletonError, match=message):
        strip_todos(bad, "f.c")


@pytest.mark.parametrize("lab", list_labs(), ids=lambda lab: lab.id)
def test_pack_of_every_lab(lab, tmp_path: Path) -> None:
    out = write_pack(lab, tmp_path / "pack", student_id="alice")
    readme = (out / "README.md").read_text()
    assert lab.spec.title in readme and "kmodlab lab selftest . . --student alice" in readme
    for name in lab.spec.submit:
        assert "TODO" in (out / name).read_text()
        assert "TODO-BEGIN" not in (out / name).read_text()
    public = load_lab(out)             # the pack is itself a lab folder students can check
    assert public.id == lab.id, "the pack's folder name must not change the parameters"
    assert not any(c.hidden for c in public.spec.checks)
    assert len(public.spec.checks) == sum(not c.hidden for c in lab.spec.checks)
    assert not public.has_solution


def test_pack_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(SkeletonError, match="not empty"):
        write_pack(list_labs()[0], tmp_path)
