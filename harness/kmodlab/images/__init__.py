"""Guest images: the initramfs every kmodlab guest boots (busybox, dropbear, virtio modules)."""

from kmodlab.images.initramfs import append_files_cpio, build_initramfs, image_manifest
from kmodlab.images.keys import (
    dropbear_host_key_path,
    ssh_client_key_path,
    ssh_client_public_key,
    ssh_host_public_key,
)
from kmodlab.images.kmods import DEFAULT_MODULES

__all__ = [
    "DEFAULT_MODULES",
    "append_files_cpio",
    "build_initramfs",
    "dropbear_host_key_path",
    "image_manifest",
    "ssh_client_key_path",
    "ssh_client_public_key",
    "ssh_host_public_key",
]
