"""Errors of the reference model."""

from __future__ import annotations

from kmodlab.errors import KmodlabError


class ModelError(KmodlabError):
    """The request has no answer in the model: an impossible argument, a flag the kernel
    version does not have, or a kernel configuration the model does not cover."""
