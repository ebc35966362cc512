"""Kernels: resolve Debian kernel series to packages, provision them into the cache, check them.

    from kmodlab.kernels import provision, kbuild_command
    kernel = provision("arm64", "6.12")          # cloud flavour, newest 6.12 ABI, cached after once
    subprocess.run(kbuild_command(kernel, module_dir), check=True)
"""

from kmodlab.kernels.build_env import check_build_tools, kbuild_command
from kmodlab.kernels.kconfig_check import check_kernel_config, require_kernel_config
from kmodlab.kernels.kernel import Kernel
from kmodlab.kernels.provisioning import (
    KernelChoice,
    cached_kernels,
    custom_kernel,
    list_kernels,
    provision,
    provision_target,
)
from kmodlab.kernels.resolution import Resolved, resolve

__all__ = [
    "Kernel",
    "KernelChoice",
    "Resolved",
    "cached_kernels",
    "check_build_tools",
    "check_kernel_config",
    "custom_kernel",
    "kbuild_command",
    "list_kernels",
    "provision",
    "provision_target",
    "require_kernel_config",
    "resolve",
]
