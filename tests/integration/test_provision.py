"""Provision the four cloud kernels (x86_64/arm64 x 6.1/6.12) for real and build a module for each.

Slow the first time (~100 MB download per kernel, a few seconds each here); afterwards the
kernels come from the cache (~/.cache/kmodlab or $KMODLAB_CACHE) in milliseconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kmodlab.kernels import (
    check_build_tools,
    check_kernel_config,
    kbuild_command,
    list_kernels,
    provision,
    resolve,
)
from kmodlab.kernels.vmlinux import elf_complete
from kmodlab.registry.arch import arch_profile
from kmodlab.registry.series import load_series

pytestmark = pytest.mark.integration

COMBOS = [(arch, series) for arch in ("x86_64", "arm64") for series in ("6.1", "6.12")]

# What `readelf -h` calls each arch's machine: the module must be built for the guest, not the host.
ELF_MACHINE = {"x86_64": "X86-64", "arm64": "AArch64"}

HELLO_C = """\
#include <linux/init.h>
#include <linux/module.h>

static int __init hello_init(void)
{
	pr_info("kmodlab hello\\n");
	return 0;
}

static void __exit hello_exit(void)
{
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kmodlab provisioning check");
"""


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{a}-{s}" for a, s in COMBOS])
def cloud_kernel(request):
    """All four, whatever KMODLAB_MATRIX says: this file checks provisioning itself."""
    arch, series = request.param
    return provision(arch, series)


def test_entry_is_complete_and_self_contained(cloud_kernel):
    series = load_series().series[cloud_kernel.series]
    assert cloud_kernel.flavour == "cloud"
    debian_arch = arch_profile(cloud_kernel.arch).debian_arch
    assert cloud_kernel.release.endswith("-cloud-" + debian_arch)
    assert series.matches_abi(cloud_kernel.release.rsplit("-cloud-", 1)[0])
    k = cloud_kernel
    for path in (k.image, k.config, k.system_map, k.headers_dir / "Makefile",
                 k.modules_dir / "modules.dep", k.root / "kernel.json"):
        assert path.is_file(), path
    assert (cloud_kernel.modules_dir / "modules.dep").stat().st_size > 0
    assert "/usr/src" not in (cloud_kernel.headers_dir / "Makefile").read_text()
    # nothing may point out of the cache entry into the host's /usr
    for dirpath, dirnames, filenames in os.walk(cloud_kernel.root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                assert not os.readlink(p).startswith("/"), p
    assert (cloud_kernel.modules_dir / "build").resolve() == cloud_kernel.headers_dir.resolve()


def test_boot_image(cloud_kernel):
    profile = arch_profile(cloud_kernel.arch)
    if profile.boot_image == "vmlinux-pvh":
        assert cloud_kernel.vmlinux is not None
        assert cloud_kernel.boot_image == cloud_kernel.vmlinux
        data = cloud_kernel.vmlinux.read_bytes()
        assert elf_complete(data)
        if shutil.which("readelf"):
            notes = subprocess.run(["readelf", "-n", str(cloud_kernel.vmlinux)],
                                   capture_output=True, check=False,
                                   text=True).stdout
            assert "(0x00000012)" in notes      # XEN_ELFNOTE_PHYS32_ENTRY: the PVH entry point
    else:
        assert cloud_kernel.vmlinux is None and cloud_kernel.boot_image == cloud_kernel.image
        assert cloud_kernel.image.read_bytes()[0x38:0x3C] == b"ARM\x64"   # arm64 Image header magic


def test_kernel_config_has_what_kmodlab_needs(cloud_kernel):
    assert check_kernel_config(cloud_kernel) == []


def test_cached_provision_needs_no_apt_and_is_identical(cloud_kernel, monkeypatch):
    # No apt call is what makes it fast (its time is a benchmark figure, never an assertion).
    import kmodlab.kernels.provisioning as prov

    assert provision(cloud_kernel.arch, cloud_kernel.series) == cloud_kernel

    def no_apt(*args, **kwargs):
        raise AssertionError("apt must not be used for a cached kernel")

    monkeypatch.setattr(prov, "default_apt", no_apt)
    monkeypatch.setattr(prov, "resolve", no_apt)
    assert provision(cloud_kernel.arch, cloud_kernel.release) == cloud_kernel


def test_resolve_agrees_with_the_cache(cloud_kernel):
    r = resolve(cloud_kernel.arch, cloud_kernel.release)
    assert (r.release, r.version) == (cloud_kernel.release, cloud_kernel.package_version)


def test_hello_module_builds_quietly(cloud_kernel, tmp_path):
    check_build_tools(cloud_kernel)
    (tmp_path / "hello.c").write_text(HELLO_C)
    (tmp_path / "Kbuild").write_text("obj-m := hello.o\n")
    argv = kbuild_command(cloud_kernel, tmp_path)
    proc = subprocess.run(argv, capture_output=True, check=False, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr                 # no warnings, no BTF skip notices
    ko = tmp_path / "hello.ko"
    assert ko.is_file()
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", str(ko)], capture_output=True,
                              check=False,
                              text=True).stdout
    assert vermagic.split()[0] == cloud_kernel.release
    if shutil.which("readelf"):
        header = subprocess.run(["readelf", "-h", str(ko)], capture_output=True, check=False,
                                text=True).stdout
        assert ELF_MACHINE[cloud_kernel.arch] in header
        sections = subprocess.run(["readelf", "-S", str(ko)], capture_output=True, check=False,
                                  text=True).stdout
        # module BTF when Debian ships the BTF base (6.12), none otherwise (6.1)
        assert (".BTF" in sections) == (cloud_kernel.headers_dir / "vmlinux").is_file()


def test_list_kernels_shows_every_combination():
    rows = {(r.arch, r.series, r.flavour): r for r in list_kernels()}
    for arch, series in COMBOS:
        for flavour in ("cloud", "generic"):
            row = rows[(arch, series, flavour)]
            assert row.latest, row.note
    cloud = rows[("x86_64", "6.1", "cloud")]
    assert cloud.default and cloud.latest in cloud.cached
