"""kmodlab's own guest tools (guest_tools_src/): built statically for each guest arch with the
registry's compiler, no kernel source needed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kmodlab.guest_tools import OWN_SOURCES, TOOLS, build_tool
from kmodlab.registry.arch import arch_profile

# e_machine of each arch's ELF files (the ELF specification's EM_* numbers)
MACHINES = {"x86_64": 62, "arm64": 183, "i386": 3}


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_kml_fragment_builds_static_for_each_arch(arch: str, tmp_path: Path,
                                                  monkeypatch) -> None:
    if shutil.which(arch_profile(arch).user_cc) is None:
        pytest.skip(f"{arch_profile(arch).user_cc} is not installed "
                    f"({' '.join(arch_profile(arch).user_cc_packages)}, host-packages.txt)")
    monkeypatch.setenv("KMODLAB_CACHE", str(tmp_path))
    binary = build_tool("kml_fragment", arch, None)
    data = binary.read_bytes()
    assert data[:4] == b"\x7fELF"
    assert int.from_bytes(data[18:20], "little") == MACHINES[arch]
    # static, no program interpreter: the guest's busybox userland has no C library
    if shutil.which("readelf"):
        headers = subprocess.run(["readelf", "-lW", str(binary)], capture_output=True,
                                 text=True, check=True).stdout
        assert "INTERP" not in headers


def test_own_tools_have_their_source_in_the_package() -> None:
    own = [t for t in TOOLS.values() if t.own]
    assert own and all((OWN_SOURCES / s).is_file() for t in own for s in t.sources)
