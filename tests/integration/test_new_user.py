"""A new user's path: a wheel installed into a fresh venv, outside the checkout, runs the example.

Packaging is the same on every kernel, so this runs on the default kernel only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmodlab.kernels.kernel import Kernel
from kmodlab.locate import CHECKOUT_ROOT as PROJECT_ROOT

pytestmark = pytest.mark.kmodlab(arch="x86_64", kernel="6.1")


def test_wheel_install_runs_the_example(kernel: Kernel, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    str(PROJECT_ROOT)], check=True, capture_output=True)
    venv = tmp_path / "venv"
    # As a user would: a fresh venv, the wheel and its dependencies from the package index.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(wheels.glob("kmodlab-*.whl"))
    subprocess.run([venv / "bin" / "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=600)
    work = tmp_path / "user-project"
    work.mkdir()
    shutil.copy(PROJECT_ROOT / "examples" / "test_allocators_example.py", work)
    result = subprocess.run(
        [venv / "bin" / "python", "-c",
         ("import kmodlab, sys, pytest; print(kmodlab.__file__); "
          "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
          f"'--kmodlab-arch', '{kernel.arch}', '--kmodlab-kernel', '{kernel.series}', '.']))")],
        cwd=work, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(venv) in result.stdout.splitlines()[0], "kmodlab was imported from the checkout"
    assert "2 passed" in result.stdout
    located = subprocess.run(
        [venv / "bin" / "python", "-c",
         ("from kmodlab.locate import DATA_DIRS, data_dir; "
          "print('\\n'.join(str(data_dir(n)) for n in DATA_DIRS))")],
        cwd=work, capture_output=True, text=True, check=True)
    for line in located.stdout.splitlines():
        assert line.startswith(str(venv)) and "/kmodlab/_data/" in line, line
