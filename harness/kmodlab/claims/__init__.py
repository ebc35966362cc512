"""Claims: the reference model put to work for people.

* ``kmodlab model ...``   the model's prediction for one request, as JSON (:mod:`.predict`)
* ``kmodlab explain ...`` the same in plain words, with what differs on the other kernels
  (:mod:`.explain`)
* ``kmodlab claims``      textbook statements about the allocators (``claims.yaml``) judged by the
  model and by measurements on booted kernels (:mod:`.catalog`, :mod:`.judges`,
  :mod:`.measure`, :mod:`.report`)
* ``kmodlab chart waste`` kmalloc's internal waste per size, per kernel (:mod:`.waste`,
  :mod:`.chart`)

Nothing here adds allocator knowledge: every number comes from :mod:`kmodlab.model` or from a
module run on a guest.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ModelTarget", "model_target"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``kmodlab`` loads this package for its commands on every invocation,
    # and the target module pulls in the model and the kernels package.
    if name not in __all__:
        raise AttributeError(f"module 'kmodlab.claims' has no attribute {name!r}")
    from kmodlab.claims import target

    value = getattr(target, name)
    globals()[name] = value
    return value
