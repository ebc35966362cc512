"""kmodlab: Linux kernel memory allocators, measured on real kernels and checked against a model."""

__version__ = "0.1.0"
