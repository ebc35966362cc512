"""The kconfig requirement files and the checker, on small texts and on the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmodlab.errors import ConfigError, KernelConfigError
from kmodlab.kernels.kconfig_check import (
    KCONFIG_DIR,
    check_config,
    check_kernel_config,
    load_requirements,
    parse_requirements,
    require_kernel_config,
)
from kmodlab.kernels.kernel import Kernel, parse_kconfig

REQS = """\
# comment lines and blank lines are skipped

CONFIG_MODULES=y              # modules are how kmodlab measures
CONFIG_VIRTIO_NET=y|m         # ssh
CONFIG_MODULE_SIG_FORCE=n     # unsigned modules
CONFIG_LOG_BUF_SHIFT=17
"""


def test_parse_requirements():
    reqs = parse_requirements(REQS, "test.config")
    assert [(r.option, r.allowed) for r in reqs] == [
        ("CONFIG_MODULES", ("y",)), ("CONFIG_VIRTIO_NET", ("y", "m")),
        ("CONFIG_MODULE_SIG_FORCE", ("n",)), ("CONFIG_LOG_BUF_SHIFT", ("17",))]
    assert reqs[0].why == "modules are how kmodlab measures"
    assert reqs[1].where == "test.config:4"


@pytest.mark.parametrize("line", ["CONFIG_X", "MODULES=y", "CONFIG_X=y extra", "CONFIG_X="])
def test_bad_lines_name_file_and_line(line):
    with pytest.raises(ConfigError, match=r"f\.config:2"):
        parse_requirements("# ok\n" + line + "\n", "f.config")


def test_check_config():
    reqs = parse_requirements(REQS)
    config = parse_kconfig(
        "CONFIG_MODULES=y\nCONFIG_VIRTIO_NET=m\n# CONFIG_MODULE_SIG_FORCE is not set\n"
        "CONFIG_LOG_BUF_SHIFT=17\n")
    assert check_config(config, reqs) == []
    bad = parse_kconfig("# CONFIG_MODULES is not set\nCONFIG_MODULE_SIG_FORCE=y\n"
                        "CONFIG_LOG_BUF_SHIFT=14\n")
    assert check_config(bad, reqs) == [
        "CONFIG_MODULES: need y, found not set (modules are how kmodlab measures)",
        "CONFIG_VIRTIO_NET: need y or m, found not set (ssh)",
        "CONFIG_MODULE_SIG_FORCE: need not set, found y (unsigned modules)",
        "CONFIG_LOG_BUF_SHIFT: need 17, found 14",
    ]


def test_real_files_parse_and_differ_per_arch():
    x86 = {r.option for r in load_requirements("x86_64")}
    arm = {r.option for r in load_requirements("arm64")}
    common = {"CONFIG_MODULES", "CONFIG_SLUB", "CONFIG_SLUB_DEBUG", "CONFIG_VIRTIO_NET"}
    assert common <= x86 and common <= arm
    assert {"CONFIG_PVH", "CONFIG_SERIAL_8250_CONSOLE"} <= x86 - arm
    assert "CONFIG_SERIAL_AMBA_PL011_CONSOLE" in arm - x86
    for r in load_requirements("x86_64"):
        assert r.why, f"{r.where}: say why kmodlab needs {r.option}"


def _kernel(tmp_path: Path, config: str, arch: str = "x86_64") -> Kernel:
    cfg = tmp_path / "config"
    cfg.write_text(config)
    return Kernel(arch=arch, series="6.1", flavour="cloud", release="6.1.0-1-cloud-amd64",
                  package_version="6.1.1-1", root=tmp_path, image=tmp_path / "img", vmlinux=None,
                  config=cfg, system_map=tmp_path / "map", modules_dir=tmp_path,
                  headers_dir=tmp_path)


def test_require_kernel_config_names_each_option(tmp_path):
    directory = tmp_path / "kconfig"
    directory.mkdir()
    (directory / "required.config").write_text("CONFIG_A=y  # a\nCONFIG_B=y|m  # b\n")
    (directory / "x86_64.config").write_text("CONFIG_C=y  # c\n")
    k = _kernel(tmp_path, "CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=y\n")
    require_kernel_config(k, directory)
    k = _kernel(tmp_path, "CONFIG_B=m\n")
    with pytest.raises(KernelConfigError) as err:
        require_kernel_config(k, directory)
    assert err.value.missing == ["CONFIG_A: need y, found not set (a)",
                                 "CONFIG_C: need y, found not set (c)"]
    assert "CONFIG_A" in str(err.value) and "CONFIG_C" in str(err.value)


def test_missing_config_file_is_clear(tmp_path):
    k = _kernel(tmp_path, "")
    k.config.unlink()
    with pytest.raises(ConfigError, match="no .config"):
        check_kernel_config(k)


def test_kconfig_dir_is_in_the_checkout():
    assert (KCONFIG_DIR / "required.config").is_file()
