"""GFP expressions users may put in module parameters.

A GFP parameter is a ``|``-joined set of kernel flag names, e.g. ``GFP_KERNEL|GFP_DMA``.  Only
names from the tables below are accepted, because the expression is pasted into C source: a
whitelist is what makes that safe.  Each family says which names it accepts (kmalloc refuses
``GFP_DMA32``, which is in the kernel's GFP_SLAB_BUG_MASK).
"""

from __future__ import annotations

from dataclasses import dataclass

# Complete masks (include/linux/gfp_types.h).  At most one per expression.
BASE_MASKS = frozenset(
    {"GFP_KERNEL", "GFP_ATOMIC", "GFP_NOWAIT", "GFP_KERNEL_ACCOUNT", "GFP_NOIO", "GFP_NOFS",
     "GFP_USER", "GFP_HIGHUSER", "GFP_HIGHUSER_MOVABLE"}
)
# Base masks that carry __GFP_HIGHMEM themselves (include/linux/gfp_types.h).
HIGHMEM_MASKS = frozenset({"GFP_HIGHUSER", "GFP_HIGHUSER_MOVABLE"})
# Zone modifiers.  At most one per expression.
ZONE_MODIFIERS = frozenset({"GFP_DMA", "GFP_DMA32", "__GFP_HIGHMEM"})
# What the slab allocators must never be given (mm/slab.h:GFP_SLAB_BUG_MASK: kmalloc_fix_flags()
# strips them with a warning): the zones a slab page cannot come from.
SLAB_BUG_FLAGS = frozenset({"GFP_DMA32", "__GFP_HIGHMEM"}) | HIGHMEM_MASKS
# Action/placement modifiers that are safe to combine with the above.
MODIFIERS = frozenset(
    {
        "__GFP_ZERO",
        "__GFP_NOWARN",
        "__GFP_RECLAIMABLE",
        "__GFP_ACCOUNT",
        "__GFP_NORETRY",
        "__GFP_RETRY_MAYFAIL",
        "__GFP_HIGH",
    }
)
ALL_FLAGS = BASE_MASKS | ZONE_MODIFIERS | MODIFIERS

# Masks without __GFP_DIRECT_RECLAIM: the module allocates with these in atomic context.
NON_BLOCKING = frozenset({"GFP_ATOMIC", "GFP_NOWAIT"})


@dataclass(frozen=True)
class Gfp:
    """A validated GFP expression."""

    tokens: tuple[str, ...]

    @property
    def name(self) -> str:
        """Canonical spelling, also what the module prints as ``gfp=``."""
        return "|".join(self.tokens)

    @property
    def c_expr(self) -> str:
        return " | ".join(self.tokens)

    @property
    def tag(self) -> str:
        """Lower-case identifier fragment for KTAP test names: GFP_KERNEL|GFP_DMA -> kernel_dma."""
        return "_".join(t.removeprefix("__").removeprefix("GFP_").lower() for t in self.tokens)

    @property
    def highmem(self) -> bool:
        """The mask allows ZONE_HIGHMEM (where the kernel has one: 32-bit)."""
        return any(t == "__GFP_HIGHMEM" or t in HIGHMEM_MASKS for t in self.tokens)

    @property
    def may_sleep(self) -> bool:
        """True when the mask allows direct reclaim (what gfpflags_allow_blocking() tests)."""
        base = [t for t in self.tokens if t in BASE_MASKS]
        return bool(base) and base[0] not in NON_BLOCKING


def parse_gfp(text: str, allowed: frozenset[str] = ALL_FLAGS) -> Gfp:
    """Parse and check one expression; raises ValueError with the allowed names."""
    tokens = tuple(t.strip() for t in text.split("|"))
    if not text.strip() or any(not t for t in tokens):
        raise ValueError(f"empty GFP flag in {text!r}")
    for token in tokens:
        if token not in allowed:
            raise ValueError(
                f"unknown or unsupported GFP flag {token!r}; allowed: {', '.join(sorted(allowed))}"
            )
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"GFP flag repeated in {text!r}")
    if sum(t in BASE_MASKS for t in tokens) > 1:
        raise ValueError(f"{text!r} combines two base masks; use one of {', '.join(sorted(BASE_MASKS))}")
    if sum(t in ZONE_MODIFIERS or t in HIGHMEM_MASKS for t in tokens) > 1:
        raise ValueError(f"{text!r} combines two zone modifiers (GFP_DMA, GFP_DMA32, "
                         "__GFP_HIGHMEM; GFP_HIGHUSER carries __GFP_HIGHMEM)")
    if not any(t in BASE_MASKS or t in ZONE_MODIFIERS for t in tokens):
        raise ValueError(f"{text!r} has no base mask (e.g. GFP_KERNEL) or zone modifier")
    return Gfp(tokens)
