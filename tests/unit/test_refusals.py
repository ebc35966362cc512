"""The kernel's refusals explained (kmodlab.refusals), on lines real kernels and kbuild printed
(tests/fixtures/refusals; the insmod lines are from the guest's busybox, captured by
tests/integration/test_refusals_on_kernels.py, which provokes each refusal on real kernels)."""

from __future__ import annotations

from pathlib import Path

from kmodlab.refusals import GPL_COMPATIBLE, ModuleFacts, explain, read_symvers

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "refusals"
SYMVERS = {"debugfs_create_dir": ("vmlinux", "EXPORT_SYMBOL_GPL"),
           "kmalloc_trace": ("vmlinux", "EXPORT_SYMBOL"),
           "nf_conntrack_find_get": ("net/netfilter/nf_conntrack", "EXPORT_SYMBOL_GPL")}


def test_hardened_usercopy_from_a_real_bug() -> None:
    (e,) = explain([(FIXTURES / "arm64-6.12-usercopy.txt").read_text()])
    assert e.id == "hardened_usercopy"
    assert e.title.startswith("hardened usercopy stopped a copy to user space from a 'kml_uc' "
                              "object (offset 0, size 64)")
    assert "kmem_cache_create_usercopy(" in e.fix and "mm/usercopy.c" in e.source
    assert "module verification failed" not in e.evidence       # taint noise is no refusal


def test_gpl_only_symbols_at_build_time() -> None:
    found = explain([(FIXTURES / "x86_64-6.1-modpost-gpl-only.txt").read_text()])
    assert [e.id for e in found] == ["gpl_only_at_build"] * 2
    assert found[0].title.startswith("debugfs_create_dir is exported GPL-only")
    assert 'MODULE_LICENSE("GPL")' in found[0].fix


def test_unknown_symbols_are_explained_by_who_exports_them() -> None:
    proprietary = ModuleFacts(license="Proprietary", symvers=SYMVERS)
    lines = ["[ 5.1] kml_x: Unknown symbol debugfs_create_dir (err -2)",
             "[ 5.2] kml_x: Unknown symbol nf_conntrack_find_get (err -2)",
             '[ 5.3] kml_x: Unknown symbol not_exported_at_all (err -2)',
             "insmod: can't insert '/tmp/kmodlab/kml_x.ko': Unknown symbol in module"]
    titles = [e.title for e in explain(["\n".join(lines)], proprietary)]
    assert titles[0].startswith("debugfs_create_dir is exported GPL-only") and \
        "Proprietary" in titles[0]
    assert titles[1].startswith("nf_conntrack_find_get is exported GPL-only")
    assert titles[2] == "not_exported_at_all is not exported by this kernel"
    assert len(titles) == 3                      # insmod's own line adds no "init failed"
    gpl = ModuleFacts(license="GPL", symvers=SYMVERS)
    (e,) = explain([lines[1]], gpl)              # a GPL module: the exporter is not loaded
    assert e.title == ("nf_conntrack_find_get is exported by the module "
                       "net/netfilter/nf_conntrack, which is not loaded")
    assert "modprobe" in e.fix


def test_parameters_and_a_second_load() -> None:
    facts = ModuleFacts(license="GPL", parameters=("count", "size"))
    (e,) = explain(["[ 7.1] kml_percpu_leak: unknown parameter 'countt' ignored"], facts)
    assert e.id == "unknown_parameter" and "count, size" in e.fix
    bad = explain(["[ 7.2] kml_percpu_leak: `many' invalid for parameter `count'",
                   "insmod: can't insert '/tmp/kmodlab/kml_percpu_leak.ko': Invalid argument"],
                  facts)
    assert [e.id for e in bad] == ["invalid_parameter"]
    (twice,) = explain(["insmod: can't insert '/tmp/kmodlab/kml_percpu_leak.ko': File exists"])
    assert twice.id == "already_loaded"
    (init,) = explain(["insmod: can't insert '/tmp/kmodlab/kml_x.ko': Cannot allocate memory"])
    assert init.id == "init_failed" and "Cannot allocate memory" in init.title


def test_nothing_to_explain_in_a_clean_load() -> None:
    log = ("[ 3.3] kml_x: loading out-of-tree module taints kernel.\n"
           "[ 3.3] kml_x: module verification failed: signature and/or required key missing - "
           "tainting kernel\n[ 3.4] kml_x: hello\n")
    assert explain([log]) == []


def test_module_symvers_and_license_list(tmp_path: Path) -> None:
    path = tmp_path / "Module.symvers"
    path.write_text("0x7140de40\tinit_uts_ns\tvmlinux\tEXPORT_SYMBOL_GPL\t\n"
                    "0x815f2897\tempty_zero_page\tvmlinux\tEXPORT_SYMBOL\t\n")
    assert read_symvers(path) == {"init_uts_ns": ("vmlinux", "EXPORT_SYMBOL_GPL"),
                                  "empty_zero_page": ("vmlinux", "EXPORT_SYMBOL")}
    assert "Dual BSD/GPL" in GPL_COMPATIBLE and "Proprietary" not in GPL_COMPATIBLE
