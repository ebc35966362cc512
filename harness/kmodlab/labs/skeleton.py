"""Student starter packs: the reference solution with its TODO regions cut out.

In ``solution/*.c`` (and .h) a region the student writes is marked with comment lines::

    /* TODO-BEGIN: allocate `count` objects of `size` bytes and keep them */
    for (i = 0; i < count; i++)
            objs[i] = kmalloc(size, GFP_KERNEL);
    /* TODO-END: (nothing allocated yet) */

The markers are comments, so the solution compiles as it is.  The skeleton keeps the BEGIN
line's indentation and replaces the region with ``/* TODO: <text> */`` followed by the stub
after ``TODO-END:`` (if any): the stub keeps the skeleton compiling, e.g. ``return 0;``.
``//`` comments work the same.  Markers stand alone on their line; regions do not nest.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kmodlab.labs.errors import SkeletonError
from kmodlab.labs.lab import LAB_FILE, PROVIDED_DIR, TEMPLATES_DIR, Lab

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)(?:/\*|//)\s*TODO-BEGIN\s*:?\s*(?P<text>.*?)\s*(?:\*/)?\s*$")
_END = re.compile(r"^[ \t]*(?:/\*|//)\s*TODO-END\s*:?\s*(?P<stub>.*?)\s*(?:\*/)?\s*$")
_ANY = re.compile(r"TODO-(?:BEGIN|END)")


@dataclass(frozen=True)
class TodoRegion:
    file: str
    begin_line: int
    end_line: int
    text: str
    stub: str


def strip_todos(text: str, filename: str = "<source>") -> tuple[str, list[TodoRegion]]:
    """The skeleton of one file and the regions cut from it."""
    out: list[str] = []
    regions: list[TodoRegion] = []
    open_at: int | None = None
    indent = desc = ""
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        begin, end = _BEGIN.match(line.rstrip("\n")), _END.match(line.rstrip("\n"))
        if begin:
            if open_at is not None:
                raise SkeletonError(f"{filename}:{lineno}: TODO-BEGIN inside the region opened "
                                    f"at line {open_at} (regions do not nest)")
            open_at, indent, desc = lineno, begin["indent"], begin["text"]
            continue
        if end:
            if open_at is None:
                raise SkeletonError(f"{filename}:{lineno}: TODO-END without a TODO-BEGIN")
            stub = end["stub"]
            out.append(f"{indent}/* TODO: {desc} */\n" if desc else f"{indent}/* TODO */\n")
            if stub:
                out.append(f"{indent}{stub}\n")
            regions.append(TodoRegion(filename, open_at, lineno, desc, stub))
            open_at = None
            continue
        if _ANY.search(line):
            raise SkeletonError(f"{filename}:{lineno}: a TODO-BEGIN/TODO-END marker must be a "
                                "comment alone on its line")
        if open_at is None:
            out.append(line)
    if open_at is not None:
        raise SkeletonError(f"{filename}:{open_at}: TODO-BEGIN is never closed by a TODO-END")
    return "".join(out), regions


def skeleton_files(lab: Lab) -> tuple[dict[str, str], list[TodoRegion]]:
    """Skeleton text of every file the student submits (from the lab's solution/)."""
    if not lab.has_solution:
        raise SkeletonError(f"{lab.path} has no {lab.solution_dir.name}/ folder: a skeleton is "
                            "cut from the reference solution")
    files: dict[str, str] = {}
    regions: list[TodoRegion] = []
    for name in lab.spec.submit:
        text = (lab.solution_dir / name).read_text()
        files[name], found = strip_todos(text, f"{lab.solution_dir.name}/{name}")
        regions.extend(found)
    if not regions:
        raise SkeletonError(f"{lab.solution_dir}: no TODO-BEGIN/TODO-END region in "
                            f"{', '.join(lab.spec.submit)}; the skeleton would be the solution")
    return files, regions


def write_skeleton_sources(lab: Lab, dest: Path) -> list[TodoRegion]:
    """Only the files a student submits, as skeletons (what ``verify`` grades)."""
    files, regions = skeleton_files(lab)
    dest.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (dest / name).write_text(text)
    return regions


def public_lab_yaml(lab: Lab) -> str:
    """lab.yaml without hidden checks: the file in a starter pack.

    Hidden checks are removed from the text (not re-serialised) so comments and layout stay as
    the instructor wrote them."""
    import yaml

    hidden = [c.name for c in lab.spec.checks if c.hidden]
    text = lab.lab_file.read_text()
    # The id seeds every student's parameters: the pack's folder name must not change it.
    pin_id = "" if lab.spec.id else f"id: {lab.id}\n"
    if not hidden:
        return pin_id + text
    data = yaml.safe_load(text)
    data["id"] = lab.id
    data["checks"] = [c for c in data["checks"] if not c.get("hidden")]
    header = (f"# Public copy of {lab.id}/{LAB_FILE}: {len(hidden)} hidden check(s) left out.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def write_pack(lab: Lab, out: Path, student_id: str | None = None) -> Path:
    """The starter pack: skeleton sources, provided headers, README.md, a public lab.yaml."""
    from kmodlab.labs.params import draw_parameters

    if out.exists() and any(out.iterdir()):
        raise SkeletonError(f"{out} exists and is not empty; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    files, regions = skeleton_files(lab)
    for name, text in files.items():
        (out / name).write_text(text)
    if lab.spec.provided:
        (out / PROVIDED_DIR).mkdir()
        for name in lab.spec.provided:
            shutil.copyfile(lab.provided_file(name), out / PROVIDED_DIR / name)
    if lab.spec.templates:
        (out / TEMPLATES_DIR).mkdir()
        for t in lab.spec.templates:
            shutil.copyfile(lab.template_file(t.source), out / TEMPLATES_DIR / t.source)
    (out / LAB_FILE).write_text(public_lab_yaml(lab))
    params = draw_parameters(lab.spec, lab.id, student_id) if student_id else None
    (out / "README.md").write_text(render_readme(lab, regions, student_id, params))
    return out


def render_readme(lab: Lab, regions: list[TodoRegion], student_id: str | None,
                  params: dict[str, int | str] | None) -> str:
    spec = lab.spec
    lines = [f"# {spec.title}", "", spec.instructions.strip(), "", "## What you hand in", ""]
    lines += [f"- `{name}`" for name in spec.submit]
    if spec.allow_extra:
        lines.append(f"- optionally, headers matching: {', '.join(f'`{p}`' for p in spec.allow_extra)}")
    lines += ["", ("Only these files are used: your Makefile/Kbuild are ignored (the grader "
                   "writes its own), and includes may name kernel headers (`<linux/...>`) or "
                   "the files above; absolute paths and `..` are refused.")]
    if spec.provided:
        lines += ["", "The grader adds these headers next to your files (copies are in "
                  f"`{PROVIDED_DIR}/`): " + ", ".join(f"`{n}`" for n in spec.provided) + "."]
    lines += ["", "## Where to write code", ""]
    for r in regions:
        lines.append(f"- `{Path(r.file).name}`, near line {r.begin_line}: {r.text or 'TODO'}")
    lines += ["", "## Your parameters", ""]
    if spec.parameters:
        if params is not None:
            lines.append(f"For student id `{student_id}`:")
            lines.append("")
            for name, value in params.items():
                desc = spec.parameters[name].description
                lines.append(f"- `{name}` = `{value}`" + (f": {desc}" if desc else ""))
        else:
            lines.append("Each student gets their own values, drawn from their student id. "
                         "`kmodlab lab selftest` shows yours when you pass `--student YOUR_ID`:")
            lines.append("")
            for name, p in spec.parameters.items():
                what = (f"one of {p.choices}" if p.choices else
                        f"between {p.range[0]} and {p.range[1]}" if p.range else f"{p.value}")
                lines.append(f"- `{name}`: {what}" + (f": {p.description}" if p.description else ""))
        lines.append("")
        lines.append("The grader passes them to `insmod` as module parameters.")
    else:
        lines.append("This lab has no per-student parameters.")
    targets = ", ".join(str(t) for t in spec.grading_targets)
    student = student_id or "YOUR_ID"
    lines += ["", "## Test it yourself", "",
              f"Grading runs on {targets}. From this folder:", "", "```sh",
              f"kmodlab lab selftest . . --student {student}",
              "```", "",
              ("This builds your module with the grader's Kbuild, loads it in a fresh guest "
               "kernel and prints the report of the public checks. "
               "Add `--arch arm64 --kernel 6.12` to try another kernel."), "",
              "## Checks", ""]
    for c in spec.checks:
        if not c.hidden:
            lines.append(f"- **{c.name}** ({c.points:g} pt)" +
                         (f": {c.description}" if c.description else ""))
    hidden = sum(1 for c in spec.checks if c.hidden)
    if hidden:
        lines.append(f"- and {hidden} hidden check(s), run only by the grader")
    return "\n".join(lines) + "\n"
