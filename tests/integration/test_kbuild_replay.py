"""kbuild replay (kmodlab.labs.kbuild_replay) against the whole kbuild, on real kernels.

Replaying the top-level make's sub-makes must change nothing but the time: every sample lab's
solution compiles to the same module both ways (every byte but .BTF's, which pahole orders
differently from one whole build to the next on 6.12); a compile error is the whole kbuild's (the
replay's failure is never shown); a damaged recipe is recorded again, not replayed.  Compiles
only (no QEMU), for the plugin's kernel matrix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel
from kmodlab.labs import kbuild_replay
from kmodlab.labs.grader import base_env, model_for
from kmodlab.labs.lab import list_labs, load_lab
from kmodlab.labs.params import draw_parameters
from kmodlab.labs.sandbox import BuildOutcome, Intake, build_submission, take_submission
from kmodlab.paths import cache_dir

pytestmark = pytest.mark.integration

LABS = list_labs()


def build(lab, intake: Intake, kernel: Kernel, work: Path, *, full: bool,
          monkeypatch: pytest.MonkeyPatch) -> BuildOutcome:
    """``intake`` built for ``kernel`` in ``work`` (no build cache): by the whole kbuild when
    ``full``, else by the recipe's replay."""
    monkeypatch.setenv("KMODLAB_FULL_KBUILD", "1" if full else "0")
    params = draw_parameters(lab.spec, lab.id, "replay")
    env = base_env(lab, kernel, params, "replay", model_for(lab, kernel))
    return build_submission(lab, intake, kernel, env, work, cache=None)


def recipe_entries(kernel: Kernel) -> list[Path]:
    return sorted(cache_dir("kbuild-recipes").glob(f"{kernel.label}-*"))


@pytest.mark.parametrize("lab", LABS, ids=lambda lab: lab.id)
def test_the_solution_is_the_same_module_both_ways(kernel: Kernel, lab, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    intake = take_submission(lab, lab.solution_dir)
    full = build(lab, intake, kernel, tmp_path / "full", full=True, monkeypatch=monkeypatch)
    replayed = build(lab, intake, kernel, tmp_path / "replay", full=False,
                     monkeypatch=monkeypatch)
    assert full.ok and replayed.ok, (full.output, replayed.output)
    assert [e for e in recipe_entries(kernel)
            if '"usable": true' in (e / "recipe.json").read_text()], \
        "no usable recipe: the solution was built by the whole kbuild both times"
    assert full.built is not None and replayed.built is not None
    assert kbuild_replay.same_module(replayed.built.ko_path.read_bytes(),
                                     full.built.ko_path.read_bytes())


def test_a_compile_error_is_the_whole_kbuilds(kernel: Kernel, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    lab = load_lab("kmalloc_waste")
    source = (lab.solution_dir / "waste.c").read_text().replace(";", "", 3)
    intake = Intake({"waste.c": source.encode()})
    full = build(lab, intake, kernel, tmp_path / "full", full=True, monkeypatch=monkeypatch)
    replayed = build(lab, intake, kernel, tmp_path / "replay", full=False,
                     monkeypatch=monkeypatch)
    assert not full.ok and not replayed.ok
    assert "error:" in full.output
    assert replayed.output == full.output


def test_a_damaged_recipe_is_recorded_again(kernel: Kernel, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    lab = load_lab("kmalloc_waste")
    intake = take_submission(lab, lab.solution_dir)
    first = build(lab, intake, kernel, tmp_path / "first", full=False, monkeypatch=monkeypatch)
    assert first.ok
    entry = next(e for e in recipe_entries(kernel) if (e / "replay.sh").is_file())
    # A replay that would build nothing and succeed: exactly what must never run.
    (entry / "replay.sh").write_text("exit 0\n")
    again = build(lab, intake, kernel, tmp_path / "again", full=False, monkeypatch=monkeypatch)
    assert again.ok, again.output
    assert "exit 0" not in (entry / "replay.sh").read_text()
    assert again.built is not None and first.built is not None
    assert kbuild_replay.same_module(again.built.ko_path.read_bytes(),
                                     first.built.ko_path.read_bytes())


def test_replay_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMODLAB_FULL_KBUILD", raising=False)
    assert kbuild_replay.enabled()
    monkeypatch.setenv("KMODLAB_FULL_KBUILD", "1")
    assert not kbuild_replay.enabled()
