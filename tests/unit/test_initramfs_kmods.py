"""Module subset selection from a fake kernel tree: dependencies, built-ins, compression, depmod."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest
from test_initramfs_elf import relocatable_elf

from kmodlab.images.kmods import (
    DEFAULT_MODULES,
    load_module,
    modinfo_depends,
    module_name,
    parse_modules_dep,
    plain_relpath,
    select_modules,
    stage_modules,
)

RELEASE = "9.9.9-test"

# A 6.1-like tree: virtio core as modules, with modules.dep as depmod would write it.
MODULES_DEP = """\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/xfs/xfs.ko:
"""


def module_bytes(name: str, depends: tuple[str, ...] = ()) -> bytes:
    info = f"name={name}\0depends={','.join(depends)}\0license=GPL\0".encode()
    return relocatable_elf({".modinfo": info})


def fake_tree(root: Path, *, with_dep: bool, compress: bool = False) -> Path:
    """A modules dir; deps are also in each module's .modinfo for the no-modules.dep path."""
    modules_dir = root / "lib/modules" / RELEASE
    graph = parse_modules_dep(MODULES_DEP)
    for rel, deps in graph.items():
        data = module_bytes(module_name(rel), tuple(module_name(d) for d in deps))
        path = modules_dir / rel
        if compress:
            path = path.with_name(path.name + ".xz")
            data = lzma.compress(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (modules_dir / "modules.builtin").write_text("kernel/drivers/char/virtio_console.ko\n"
                                                 "kernel/drivers/virtio/virtio_mmio.ko\n")
    (modules_dir / "modules.order").write_text("".join(f"{r}\n" for r in graph))
    if with_dep:
        text = MODULES_DEP.replace(".ko", ".ko.xz") if compress else MODULES_DEP
        (modules_dir / "modules.dep").write_text(text)
    return modules_dir


def test_module_names() -> None:
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert module_name("virtio_net.ko") == "virtio_net"
    assert module_name("x.ko.zst") == "x"
    assert plain_relpath("kernel/a/b.ko.zst") == "kernel/a/b.ko"
    assert plain_relpath("kernel/a/b.ko") == "kernel/a/b.ko"


@pytest.mark.parametrize("with_dep", [True, False], ids=["modules.dep", "modinfo"])
def test_selection_follows_dependencies_and_skips_builtins(tmp_path: Path, with_dep: bool) -> None:
    modules_dir = fake_tree(tmp_path, with_dep=with_dep)
    sel = select_modules(modules_dir, ["virtio-net", "virtio_console", "virtio_mmio", "nosuch"])
    assert sorted(module_name(r) for r in sel.files) == [
        "failover", "net_failover", "virtio", "virtio_net", "virtio_ring"]
    assert sel.builtin == ("virtio_console", "virtio_mmio")
    assert sel.missing == ("nosuch",)
    assert all(p.is_file() for p in sel.files.values())


def test_default_set_leaves_unrelated_modules_out(tmp_path: Path) -> None:
    sel = select_modules(fake_tree(tmp_path, with_dep=True), DEFAULT_MODULES)
    names = {module_name(r) for r in sel.files}
    # brd is absent from the fake tree (a kernel may lack a module: it is skipped); ext4 pulls
    # in jbd2
    assert names == {"virtio", "virtio_ring", "virtio_pci", "virtio_pci_legacy_dev",
                     "virtio_pci_modern_dev", "virtio_net", "net_failover", "failover",
                     "virtio_rng", "ext4", "jbd2"}
    assert "xfs" not in names
    assert sel.builtin == ("virtio_console", "virtio_mmio")


@pytest.mark.parametrize("with_dep", [True, False], ids=["modules.dep", "modinfo"])
def test_compressed_modules(tmp_path: Path, with_dep: bool) -> None:
    modules_dir = fake_tree(tmp_path, with_dep=with_dep, compress=True)
    sel = select_modules(modules_dir, ["virtio_net"])
    assert all(rel.endswith(".ko.xz") for rel in sel.files)
    assert len(sel.files) == 5
    net = next(p for r, p in sel.files.items() if module_name(r) == "virtio_net")
    assert modinfo_depends(load_module(net)) == ("net_failover", "failover", "virtio",
                                                  "virtio_ring")


@pytest.mark.skipif(shutil.which("depmod") is None, reason="kmod is not installed")
def test_stage_decompresses_and_regenerates_modules_dep(tmp_path: Path) -> None:
    modules_dir = fake_tree(tmp_path, with_dep=False, compress=True)
    files = stage_modules(select_modules(modules_dir, ["virtio_net"]), RELEASE)
    base = f"/lib/modules/{RELEASE}"
    kos = sorted(p for p in files if p.endswith(".ko"))
    assert kos == [f"{base}/kernel/drivers/net/net_failover.ko",
                   f"{base}/kernel/drivers/net/virtio_net.ko",
                   f"{base}/kernel/drivers/virtio/virtio.ko",
                   f"{base}/kernel/drivers/virtio/virtio_ring.ko",
                   f"{base}/kernel/net/core/failover.ko"]
    assert all(files[k].startswith(b"\x7fELF") for k in kos)       # shipped uncompressed
    dep = parse_modules_dep(files[f"{base}/modules.dep"].decode())
    assert sorted(dep) == sorted(k.removeprefix(base + "/") for k in kos)
    assert f"{base}/modules.builtin" in files and f"{base}/modules.dep.bin" in files
    # Same selection, same bytes (the image hash depends on it).
    again = stage_modules(select_modules(modules_dir, ["virtio_net"]), RELEASE)
    assert again == files


def test_fingerprint_tracks_module_content(tmp_path: Path) -> None:
    modules_dir = fake_tree(tmp_path, with_dep=True)
    before = select_modules(modules_dir, ["virtio_net"]).fingerprint()
    assert select_modules(modules_dir, ["virtio_net"]).fingerprint() == before
    (modules_dir / "kernel/net/core/failover.ko").write_bytes(module_bytes("failover") + b"x")
    assert select_modules(modules_dir, ["virtio_net"]).fingerprint() != before
    # An unrelated module does not matter.
    after = select_modules(modules_dir, ["virtio_net"]).fingerprint()
    (modules_dir / "kernel/fs/ext4/ext4.ko").write_bytes(b"changed")
    assert select_modules(modules_dir, ["virtio_net"]).fingerprint() == after


def test_missing_modules_dir_is_reported(tmp_path: Path) -> None:
    from kmodlab.errors import ProvisionError
    with pytest.raises(ProvisionError, match="re-provision"):
        select_modules(tmp_path / "nope")
