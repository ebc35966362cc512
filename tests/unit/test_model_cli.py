"""``kmodlab model ...`` and ``kmodlab explain ...``: argument handling and the JSON contract.

No guest and no cached kernel are needed: the kernel cache is pointed at an empty temporary
directory (Debian defaults), or at a fake kernel entry whose .config is written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kmodlab.cli
from kmodlab.claims import target as target_mod
from kmodlab.claims.captures import save_capture
from kmodlab.cli import main
from kmodlab.kernels.kernel import Kernel

FIELD_KEYS = {"value", "rule", "exact"}

SLABINFO = """\
slabinfo - version: 2.1
# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata <active_slabs> <num_slabs> <sharedavail>
newer_4032          16     16   4032    8    8 : tunables    0    0    0 : slabdata      2      2      0
owner_4032           8      8   4032    8    8 : tunables    0    0    0 : slabdata      1      1      0
kmalloc-8k          12     12   8192    4    8 : tunables    0    0    0 : slabdata      3      3      0
"""


@pytest.fixture(autouse=True)
def only_claims_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real kmodlab main(), wired with this package's commands only, so another feature
    package's state cannot break these tests."""
    monkeypatch.setattr(kmodlab.cli, "FEATURE_COMMANDS", ("kmodlab.claims.cli",))


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No provisioned kernels and no captures unless a test adds them."""
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    rc = main(list(argv))
    out = capsys.readouterr().out
    return rc, json.loads(out) if rc == 0 else {}


def fake_kernel(tmp_path: Path, arch: str = "x86_64", series: str = "6.12",
                config: str = "CONFIG_SLUB=y\nCONFIG_SLAB_MERGE_DEFAULT=y\nCONFIG_MEMCG=y\n"
                ) -> Kernel:
    path = tmp_path / f"config-{arch}-{series}"
    path.write_text(config)
    release = {"6.1": "6.1.0-56-cloud-amd64", "6.12": "6.12.117+deb12-cloud-amd64"}[series]
    return Kernel(arch=arch, series=series, flavour="cloud", release=release,
                  package_version="1", root=tmp_path, image=tmp_path / "img", vmlinux=None,
                  config=path, system_map=tmp_path / "map", modules_dir=tmp_path,
                  headers_dir=tmp_path)


def test_ksize_json_names_the_value_rule_and_config(capsys: pytest.CaptureFixture[str]) -> None:
    rc, data = run(capsys, "model", "ksize", "160", "--arch", "arm64", "--kernel", "6.1")
    assert rc == 0
    assert data["arch"] == "arm64" and data["kernel"] == "6.1"
    assert data["config"] == "Debian defaults" and data["release"] is None
    assert data["request"] == {"size": 160, "gfp": "GFP_KERNEL"}
    for key in ("ksize", "cache", "waste"):
        assert FIELD_KEYS <= set(data[key]), key
    assert data["ksize"]["value"] == 256 and data["ksize"]["exact"] is True
    assert data["cache"]["value"] == "kmalloc-256"
    assert "kmalloc_slab()" in data["ksize"]["rule"]
    assert data["waste"]["value"] == {"bytes": 96, "percent": 37.5}


@pytest.mark.parametrize("arch, series, size, ksize, cache", [
    ("x86_64", "6.1", "160", 192, "kmalloc-192"),
    ("x86_64", "6.12", "1", 8, "kmalloc-8"),
    ("arm64", "6.12", "96", 96, "kmalloc-96"),
    ("arm64", "6.1", "96", 128, "kmalloc-128"),
    ("x86_64", "6.12", "8K", 8192, "kmalloc-8k"),
])
def test_ksize_on_each_kernel(capsys: pytest.CaptureFixture[str], arch: str, series: str,
                              size: str, ksize: int, cache: str) -> None:
    rc, data = run(capsys, "model", "ksize", size, "--arch", arch, "--kernel", series)
    assert rc == 0 and data["ksize"]["value"] == ksize and data["cache"]["value"] == cache
    assert "order" not in data


def test_ksize_above_the_slab_range_names_the_page_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, data = run(capsys, "model", "ksize", "10000")
    assert rc == 0
    assert data["cache"]["value"] is None and data["ksize"]["value"] == 16384
    assert data["order"]["value"] == 2


def test_cache_json_uses_slabinfo_column_names(capsys: pytest.CaptureFixture[str]) -> None:
    rc, data = run(capsys, "model", "cache", "--size", "4000", "--align", "0", "--flags",
                   "SLAB_HWCACHE_ALIGN", "--arch", "x86_64", "--kernel", "6.12", "--cpus", "2")
    assert rc == 0
    assert data["ncpus"] == 2
    for key in ("objsize", "objperslab", "pagesperslab", "merge", "merge_into"):
        assert {"value", "rule"} <= set(data[key]), key
        assert isinstance(data[key].get("exact"), bool), key
    assert (data["objsize"]["value"], data["objperslab"]["value"],
            data["pagesperslab"]["value"]) == (4032, 8, 8)
    assert data["merge"]["value"] is True and data["merge"]["unique_id"] == ":0004032"
    # Without a capture the model only knows kmalloc caches, which are never merge targets.
    assert data["merge_into"]["value"] is None and data["merge_into"]["exact"] is False
    assert "kmodlab model capture" in data["merge_into"]["reason"]


def test_a_ctor_makes_the_cache_unmergeable(capsys: pytest.CaptureFixture[str]) -> None:
    rc, data = run(capsys, "model", "cache", "--size", "100", "--ctor", "--kernel", "6.1")
    assert rc == 0
    assert data["objsize"]["value"] == 112
    assert data["merge"]["value"] is False and "constructor" in data["merge"]["reason"]
    assert data["merge_into"] == {"value": None, "rule": data["merge_into"]["rule"],
                                  "exact": True, "reason": "unmergeable: it has a constructor"}


def test_real_config_and_capture_name_the_merge_target(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(tmp_path)
    monkeypatch.setattr(target_mod, "cached_kernel", lambda arch, spec, flavour="cloud":
                        kernel if (arch, spec) == ("x86_64", "6.12") else None)
    save_capture(kernel.release, SLABINFO,
                 "owner_4032 :0004032\nnewer_4032 :0004032\nalias_4032 :0004032\n")
    rc, data = run(capsys, "model", "cache", "--size", "4000", "--flags", "SLAB_HWCACHE_ALIGN",
                   "--kernel", "6.12")
    assert rc == 0
    assert data["config"] == "kernel .config" and data["release"] == kernel.release
    # Oldest first: owner_4032 is listed after newer_4032 in slabinfo, so it is older.
    assert data["merge_into"]["value"] == "owner_4032" and data["merge_into"]["exact"] is True
    # --defaults ignores the kernel's .config and its capture.
    rc, data = run(capsys, "model", "cache", "--size", "4000", "--flags", "SLAB_HWCACHE_ALIGN",
                   "--kernel", "6.12", "--defaults")
    assert data["config"] == "Debian defaults" and data["merge_into"]["value"] is None


def test_a_slab_account_cache_only_merges_with_accounted_caches(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_kernel(tmp_path)
    monkeypatch.setattr(target_mod, "cached_kernel", lambda *a, **k: kernel)
    save_capture(kernel.release, SLABINFO, "owner_4032 :0004032\nnewer_4032 :A-0004032\n")
    rc, data = run(capsys, "model", "cache", "--size", "4000", "--flags",
                   "SLAB_HWCACHE_ALIGN|SLAB_ACCOUNT", "--kernel", "6.12")
    assert rc == 0 and data["merge_into"]["value"] == "newer_4032"


def test_vmalloc_and_pages(capsys: pytest.CaptureFixture[str]) -> None:
    rc, data = run(capsys, "model", "vmalloc", "3M", "--kernel", "6.12")
    assert rc == 0
    assert data["size"]["value"] == (768 + 1) * 4096 and data["pages"]["value"] == 768
    assert data["lines"]["value"] == 2 and data["flags"]["value"] == ["vmalloc", "vpages"]
    rc, data = run(capsys, "model", "pages", "3", "--arch", "arm64")
    assert rc == 0
    assert data["pages"]["value"] == 8 and data["bytes"]["value"] == 32768
    assert data["pcp"]["value"] is True and data["kmalloc_sizes"]["value"] == [16385, 32768]


def test_a_16k_kernel_is_answered_with_16k_pages(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's example: ``vmalloc 1`` on arm64 6.12 16k answered 8192 bytes (4K pages),
    marked exact; then it was refused; now the 16k flavour is covered (held against Debian's
    arm64-16k 6.12 and 7.2 kernels): one 16 KiB page plus the 16 KiB guard."""
    import json

    assert main(["model", "vmalloc", "1", "--arch", "arm64", "--kernel", "6.12", "--flavour",
                 "16k", "--defaults"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size"] == {**out["size"], "value": 32768, "exact": True}


@pytest.mark.parametrize("argv, message", [
    (["model", "ksize", "160", "--kernel", "4.19"],
     "unknown kernel series '4.19'; known: 5.10, 6.1, 6.12, 7.2"),
    (["model", "ksize", "160", "--arch", "riscv64"],
     "unknown architecture 'riscv64'; known: arm64, i386, x86_64"),
    (["model", "vmalloc", "1", "--arch", "i386", "--kernel", "6.12"],
     "Debian builds no i386 kernel after 6.1"),
    (["model", "vmalloc", "1", "--arch", "x86_64", "--flavour", "16k"],
     "flavour 16k exists only for arm64"),
    # --config is honoured, never answered with the stock kernel's numbers
    (["model", "vmalloc", "1", "--arch", "arm64", "--kernel", "6.12", "--config",
      "pagesize-64k", "--defaults"], "--defaults cannot stand in"),
    (["model", "ksize", "64", "--config", "slub-debug", "--defaults"],
     "the kernel boots with slub_debug=FZPU"),
    (["model", "cache", "--size", "100", "--flags", "SLAB_NO_MERGE", "--kernel", "6.1"],
     "SLAB_NO_MERGE does not exist in 6.1"),
    (["model", "cache", "--size", "100", "--flags", "SLAB_BOGUS"], "unknown slab flag"),
    (["model", "pages", "11", "--kernel", "6.12"], "order must be 0..10"),
    (["model", "ksize", "160", "--gfp", "GFP_BOGUS"], "unknown GFP flag"),
])
def test_model_errors_are_reported_not_raised(capsys: pytest.CaptureFixture[str],
                                              argv: list[str], message: str) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["model", "ksize", "-5"],
    ["model", "ksize", "lots"],
    ["model", "cache", "--align", "8"],          # --size is required
    ["model"],
])
def test_bad_arguments_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_explain_kmalloc_says_why_and_compares(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "kmalloc", "160", "--arch", "arm64", "--kernel", "6.1"]) == 0
    text = capsys.readouterr().out
    assert "kmalloc-256" in text and "ksize() = 256" in text
    assert "ARCH_DMA_MINALIGN is 128" in text
    assert "no kmalloc-96 and no kmalloc-192" in text
    assert "create_kmalloc_caches()" in text
    assert "On the other kernels:" in text
    assert "- x86_64 6.1: kmalloc-192, ksize 192 (64 bytes less)" in text
    assert "- arm64 6.12: kmalloc-192" in text and "DMA_BOUNCE_UNALIGNED_KMALLOC" in text


def test_explain_kmalloc_reports_alignment_differences(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "kmalloc", "160", "--kernel", "6.12"]) == 0
    text = capsys.readouterr().out
    assert "- x86_64 6.1: the same (kmalloc-192, ksize 192)." in text
    assert "8-byte aligned there, 64 here" in text
    assert "- arm64 6.1: kmalloc-256, ksize 256 (64 bytes more)" in text


def test_explain_cache(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "cache", "--size", "100", "--ctor", "--kernel", "6.12"]) == 0
    text = capsys.readouterr().out
    assert "Slot size (objsize) 112" in text and "constructor" in text
    assert "Merging: never" in text
    assert "- arm64 6.1: the same (objsize 112, 36 per slab, 1 page(s))." in text


def test_a_real_16k_config_is_read_as_16k_not_4k() -> None:
    """6.12 and later spell the page size CONFIG_PAGE_SHIFT (arch/Kconfig); the model read only
    6.1's CONFIG_ARM64_PAGE_SHIFT, so a cached 16k kernel's .config resolved as 4 KiB pages."""
    from kmodlab.model import Model
    from kmodlab.model.params import debian_kconfig

    kconfig = {k: v for k, v in debian_kconfig("arm64", "6.12").items()
               if k != "CONFIG_ARM64_PAGE_SHIFT"}
    kconfig.update({"CONFIG_ARM64_16K_PAGES": "y", "CONFIG_PAGE_SHIFT": "14"})
    kconfig.pop("CONFIG_ARM64_4K_PAGES", None)
    assert Model("arm64", "6.12", kconfig).PAGE_SIZE == 16384
    kconfig["CONFIG_PAGE_SHIFT"] = "12"
    assert Model("arm64", "6.12", kconfig).PAGE_SIZE == 4096
