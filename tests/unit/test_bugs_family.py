"""The bugs family: one deliberate bug per module, named on request and never run by default."""

from __future__ import annotations

import re

import pytest

from kmodlab.check.run import resolve_families
from kmodlab.errors import ConfigError
from kmodlab.modules import FAMILIES, MEASURED_FAMILIES, parse_params, render
from kmodlab.modules.bugs import MARKER, bug_line, catalog
from kmodlab.modules.params.base import validate_params
from kmodlab.modules.params.bugs import BUG_CLASSES, BugsParams, bug_tag
from kmodlab.observe.dmesg import classify

CASES = [pytest.param(bug, at, id=f"{bug}-{at}") for bug in BUG_CLASSES for at in ("load", "unload")]


# --- the family and its parameters -------------------------------------------------------------

def test_bugs_is_a_family_but_never_part_of_every_family() -> None:
    assert FAMILIES["bugs"].params is BugsParams
    assert FAMILIES["bugs"].module_name == "kml_bugs"
    assert not FAMILIES["bugs"].measured
    assert "bugs" not in MEASURED_FAMILIES
    assert set(MEASURED_FAMILIES) == set(FAMILIES) - {"bugs"}
    # kmodlab check has its own list, and refuses the family outright.
    assert "bugs" not in resolve_families(None)
    with pytest.raises(ConfigError, match="unknown family bugs"):
        resolve_families(["bugs"])


def test_an_unknown_bug_is_refused_naming_every_known_one() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_params("bugs", ["bug=use-after-free"])
    message = str(exc.value)
    assert message.startswith("bugs:") and "'bug'" in message
    assert "unknown bug class" in message
    for bug in BUG_CLASSES:
        assert bug in message


def test_the_bug_is_required() -> None:
    with pytest.raises(ConfigError, match=r"parameter 'bug' is required.*known: slab-oob-write"):
        validate_params(BugsParams, {})
    with pytest.raises(ConfigError, match="parameter 'bug' is required"):
        render("bugs")


@pytest.mark.parametrize("at", ["init", "exit", "", "LOAD"])
def test_at_is_load_or_unload(at: str) -> None:
    with pytest.raises(ConfigError, match=r"'at'.*'load' or 'unload'"):
        parse_params("bugs", ["bug=double-free", f"at={at}"])


def test_cli_strings_become_the_parameters() -> None:
    params = parse_params("bugs", ["bug=double-free", "at=unload"])
    assert params == BugsParams(bug="double-free", at="unload")
    assert parse_params("bugs", ["bug=leak-pages"]).at == "load"
    assert params.template_context() == {"bug": "double-free", "tag": "double_free",
                                         "at": "unload"}


def test_classes_are_distinct_c_identifiers_once_tagged() -> None:
    tags = [bug_tag(bug) for bug in BUG_CLASSES]
    assert len(set(tags)) == len(tags)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", tag) for tag in tags)


# --- rendering -----------------------------------------------------------------------------

@pytest.mark.parametrize(("bug", "at"), CASES)
def test_every_class_renders_with_one_marked_bug(bug: str, at: str) -> None:
    r = render("bugs", {"bug": bug, "at": at})
    src = r.source
    tag = bug_tag(bug)
    assert r.module_name == "kml_bugs"
    assert set(r.files) == {"kml_bugs.c", "kmodlab_ktap.h", "Kbuild"}
    assert src.count(MARKER) == 1
    assert src.count("kmodlab: the bug") == 1      # not even quoted in a comment elsewhere
    lines = src.splitlines()
    line = lines[bug_line(src) - 1]
    code = line.split(MARKER)[0].strip()
    assert code.endswith(";"), line                 # a statement, not a comment of its own
    # The marked statement is in the class's own noinline function (the report's frame).
    start = src.index(f"static noinline void kml_{tag}(struct kml_ktap *t)\n{{")
    end = src.index("\n}\n", start)
    assert start < src.index(MARKER) < end
    # Only this class's code is rendered.
    others = [f"kml_{bug_tag(b)}(" for b in BUG_CLASSES if b != bug]
    assert not [o for o in others if o in src]
    # The bug runs in the chosen phase; the other phase's test is a SKIP.
    init = src[src.index("static int __init kml_init"):src.index("static void __exit kml_exit")]
    exit_ = src[src.index("static void __exit kml_exit"):]
    ran, skipped = (init, exit_) if at == "load" else (exit_, init)
    assert f"\tkml_{tag}(&t);" in ran and "kml_ktap_skip" not in ran
    assert f"kml_{tag}(" not in skipped and "kml_ktap_skip" in skipped
    assert f'#define KML_BUG\t\t"{bug}"' in src and f'#define KML_AT\t\t"{at}"' in src
    assert 'MODULE_LICENSE("GPL");' in src
    assert "{{" not in src and "{%" not in src
    # Kernel style: tabs for indentation, no trailing whitespace.
    assert not re.search(r"^ {8}", src, re.MULTILINE)
    assert not re.search(r"[ \t]+$", src, re.MULTILINE)


def test_bug_line_counts_markers() -> None:
    assert bug_line(f"a;\nb; {MARKER}\nc;\n") == 2
    with pytest.raises(ConfigError, match="marks 0"):
        bug_line("a;\n")
    with pytest.raises(ConfigError, match="marks 2"):
        bug_line(f"a; {MARKER}\nb; {MARKER}\n")


def test_caches_the_bugs_create_are_unmergeable() -> None:
    # A mergeable cache would be an alias of kmalloc-N: reports would not name it, and
    # destroying an alias only drops a reference (mm/slab_common.c:slab_unmergeable()).
    for bug in ("leak-kmem-cache", "kmem-cache-destroy-live", "mempool-free-wrong-pool"):
        src = render("bugs", {"bug": bug}).source
        assert "kmem_cache_create(name, size, 0, 0, kml_ctor)" in src
        assert ".ctor = kml_ctor," in src          # the 6.12 form, under its version guard


# --- the catalog ---------------------------------------------------------------------------

def test_the_catalog_has_every_class_in_order() -> None:
    specs = catalog()
    assert tuple(specs) == BUG_CLASSES
    for name, spec in specs.items():
        assert spec.summary and spec.allocator and spec.stock, name
        assert spec.expected or spec.silent, name


@pytest.mark.parametrize("bug", BUG_CLASSES)
def test_expectations_are_consistent(bug: str) -> None:
    kinds = {"kasan", "kfence", "bug", "might_sleep", "slab_leak", "warning", "oops", None}
    for exp in catalog()[bug].expected:
        assert exp.source, exp
        assert exp.kind in kinds, exp
        if exp.match is None:
            continue
        re.compile(exp.match)
        sample = exp.first_line.replace("…", "1")
        assert exp.matches(sample), (exp.match, exp.first_line)
        # The kind is what kmodlab's own classifier makes of that line, when it is a trigger.
        found = classify(sample)
        if found is not None:
            assert found[0] == exp.kind, (sample, found)
        # A report naming a module function names this class's own function.
        named = re.findall(r"\bkml_[a-z_]+(?=\+)", exp.first_line)
        assert set(named) <= {f"kml_{bug_tag(bug)}"}, exp.first_line
