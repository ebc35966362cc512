"""The kbuild argv and host-tool checks come from the arch profile and the kernel's .config."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import MissingToolError
from kmodlab.kernels import build_env
from kmodlab.kernels.build_env import check_build_tools, kbuild_command, required_tools
from kmodlab.kernels.kernel import Kernel

CONFIG = ('CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"\n'
          "CONFIG_DEBUG_INFO_BTF_MODULES=y\n")


def fake_kernel(tmp_path: Path, arch: str, config: str = CONFIG, btf_base: bool = True) -> Kernel:
    headers = tmp_path / "headers"
    headers.mkdir(exist_ok=True)
    (headers / ".config").write_text(config)
    if btf_base:
        (headers / "vmlinux").write_bytes(b"\x7fELF")
    return Kernel(arch=arch, series="6.12", flavour="cloud", release="6.12.1+deb12-cloud-x",
                  package_version="6.12.1-1", root=tmp_path, image=tmp_path / "vmlinuz",
                  vmlinux=None, config=headers / ".config", system_map=tmp_path / "System.map",
                  modules_dir=tmp_path / "modules", headers_dir=headers)


def test_x86_native_command(tmp_path):
    k = fake_kernel(tmp_path, "x86_64")
    argv = kbuild_command(k, tmp_path / "mod")
    assert argv == ["make", "-C", str(k.headers_dir), f"M={(tmp_path / 'mod').resolve()}",
                    "ARCH=x86", "modules"]


def test_arm64_cross_command(tmp_path):
    k = fake_kernel(tmp_path, "arm64")
    argv = kbuild_command(k, tmp_path / "mod", target="clean")
    assert argv[-3:] == ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "clean"]


def test_module_btf_off_without_a_btf_base(tmp_path):
    """Debian 6.1 headers ship no vmlinux: kbuild would print a skip notice per module."""
    k = fake_kernel(tmp_path, "x86_64", btf_base=False)
    assert "CONFIG_DEBUG_INFO_BTF_MODULES=" in kbuild_command(k, tmp_path)
    assert "pahole" not in [t.tool for t in required_tools(k)]
    (tmp_path / "b").mkdir()
    k2 = fake_kernel(tmp_path / "b", "x86_64", btf_base=True)
    assert "CONFIG_DEBUG_INFO_BTF_MODULES=" not in kbuild_command(k2, tmp_path)
    assert "pahole" in [t.tool for t in required_tools(k2)]


@pytest.mark.parametrize(
    "arch, cc_text, tool, package",
    [
        ("x86_64", "gcc-12 (Debian 12.2.0-14) 12.2.0", "gcc-12", "gcc-12"),
        ("arm64", "gcc-12 (Debian 12.2.0-14) 12.2.0", "aarch64-linux-gnu-gcc-12",
         "gcc-12-aarch64-linux-gnu"),
        ("arm64", "gcc (GCC) 13.2.0", "aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        ("x86_64", "clang version 16.0.6", "clang", "clang"),
        # 7.2's headers name the compiler with its triplet and override CROSS_COMPILE to match
        ("x86_64", "x86_64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0",
         "x86_64-linux-gnu-gcc-16", "gcc-16"),
        ("arm64", "aarch64-linux-gnu-gcc-16 (Debian 16.2.0-4) 16.2.0",
         "aarch64-linux-gnu-gcc-16", "gcc-16"),
    ],
)
def test_compiler_tool_and_package(tmp_path, arch, cc_text, tool, package):
    k = fake_kernel(tmp_path, arch, f'CONFIG_CC_VERSION_TEXT="{cc_text}"\n')
    cc = required_tools(k)[1]
    assert (cc.tool, cc.package) == (tool, package)


def test_missing_tool_names_the_debian_package(tmp_path, monkeypatch):
    k = fake_kernel(tmp_path, "arm64")
    monkeypatch.setattr(build_env.shutil, "which",
                        lambda t: None if t == "pahole" else f"/usr/bin/{t}")
    with pytest.raises(MissingToolError, match="apt-get install dwarves"):
        check_build_tools(k)
    monkeypatch.setattr(build_env.shutil, "which",
                        lambda t: None if t.startswith("aarch64") else f"/usr/bin/{t}")
    with pytest.raises(MissingToolError, match="gcc-12-aarch64-linux-gnu"):
        check_build_tools(k)


def test_missing_shared_library_names_its_package(tmp_path, monkeypatch):
    k = fake_kernel(tmp_path, "x86_64")
    (k.headers_dir / "scripts" / "mod").mkdir(parents=True)
    (k.headers_dir / "scripts" / "mod" / "modpost").write_text("")
    monkeypatch.setattr(build_env.shutil, "which", lambda t: f"/usr/bin/{t}")

    class Ldd:
        stdout = "\tlinux-vdso.so.1 (0x0)\n\tlibelf.so.1 => not found\n"

    monkeypatch.setattr(build_env.subprocess, "run", lambda *a, **kw: Ldd)
    with pytest.raises(MissingToolError, match="apt-get install libelf1"):
        check_build_tools(k)
