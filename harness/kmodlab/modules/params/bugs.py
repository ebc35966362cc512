"""bugs family: one deliberate memory bug per module, to see which detector reports it.

Unlike every other family, a bugs module is wrong on purpose: it may oops, WARN or corrupt the
allocator it abuses.  It is never run by default (``Family.measured`` is False): only a caller
naming the family and a ``bug`` builds it (``kmodlab run bugs -p bug=double-free``).  What each
class does, and which detector is expected to report it with which first line, is
``modules/bugs/bugs.yaml`` (:mod:`kmodlab.modules.bugs` reads it).
"""

from __future__ import annotations

import typing
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kmodlab.modules.params.base import FamilyParams

BugClass = Literal[
    # out of bounds
    "slab-oob-write",
    "slab-oob-read",
    "vmalloc-oob-write",
    "page-oob-write",
    # use after free, bad frees
    "slab-use-after-free",
    "slab-use-after-free-write",
    "double-free",
    "invalid-free",
    # leaks
    "leak-kmalloc",
    "leak-kmem-cache",
    "leak-vmalloc",
    "leak-pages",
    "leak-percpu",
    # wrong context
    "gfp-kernel-under-spinlock",
    "vmalloc-in-atomic",
    # API misuse
    "kmalloc-too-large",
    "free-pages-wrong-order",
    "kmem-cache-destroy-live",
    "mempool-free-wrong-pool",
]
BUG_CLASSES: tuple[str, ...] = typing.get_args(BugClass)
"""Every class, in the order of ``modules/bugs/bugs.yaml``."""

Phase = Literal["load", "unload"]


def bug_tag(bug: str) -> str:
    """The class as a C identifier: the KTAP test name and the faulty function's suffix."""
    return bug.replace("-", "_")


class BugsParams(FamilyParams):
    family: ClassVar[str] = "bugs"

    bug: BugClass = Field(description="one bug class of modules/bugs/bugs.yaml (required)")
    at: Phase = Field(default="load",
                      description="load (the bug runs in module init) or unload (in module exit)")

    @model_validator(mode="before")
    @classmethod
    def _bug_is_required(cls, data: Any) -> Any:
        # pydantic's "Field required" would print the whole input as the value; say what to do.
        if isinstance(data, dict) and "bug" not in data:
            raise ValueError("parameter 'bug' is required (a bugs module holds one bug); "
                             "known: " + ", ".join(BUG_CLASSES))
        return data

    @field_validator("bug", mode="before")
    @classmethod
    def _known_bug(cls, value: Any) -> Any:
        if value not in BUG_CLASSES:
            raise ValueError("unknown bug class; known: " + ", ".join(BUG_CLASSES))
        return value

    def template_context(self) -> dict[str, Any]:
        return {"bug": self.bug, "tag": bug_tag(self.bug), "at": self.at}
