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

from kmodlab.lazy import lazy_exports

__all__ = ["ModelTarget", "model_target"]


# Imported on first use: ``kmodlab`` loads this package for its commands on every invocation,
# and the target module pulls in the model and the kernels package.
__getattr__ = lazy_exports(__name__, {"ModelTarget": "target", "model_target": "target"},
                           globals())
