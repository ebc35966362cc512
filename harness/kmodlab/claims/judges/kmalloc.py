"""Claims about kmalloc size classes: ksize, the smallest and largest kmalloc, waste.

The model side reads :meth:`Model.ksize` and the kmalloc constants; the measured side reads the
``kmalloc_sweep`` probe (the kmalloc family: ``kmalloc_<n>_kernel`` and ``kmalloc_constants``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kmodlab.claims.judges.base import Finding, Judge, int_value, register, size_text
from kmodlab.claims.observations import Observations
from kmodlab.claims.target import ModelTarget
from kmodlab.model import Model


def kmalloc_test(size: int, gfp_tag: str = "kernel") -> str:
    """KTAP test name of kmalloc(size, GFP_...) in the kmalloc family."""
    return f"kmalloc_{size}_{gfp_tag}"


def measured_ksizes(obs: Observations, probe: str = "kmalloc_sweep") -> dict[int, int]:
    """{size: ksize} of every successful kmalloc_<size>_kernel test of a probe."""
    out: dict[int, int] = {}
    for test, values in obs.tests(probe).items():
        parts = test.split("_")
        if len(parts) == 3 and parts[0] == "kmalloc" and parts[2] == "kernel" \
                and parts[1].isdigit() and values.get("allocated", 0) >= 1:
            ksize = values.get("ksize")
            if isinstance(ksize, int):
                out[int(parts[1])] = ksize
    return out


@register
class KsizeIs(Judge):
    """"ksize(kmalloc(size)) is <claimed>"."""

    name = "ksize_is"

    def model(self, target: ModelTarget, *, size: int, claimed: int, **_: Any) -> Finding:
        m = target.model
        k = m.ksize(size)
        cache = m.kmalloc_cache_for(size).value or "pages"
        return Finding("true" if k.value == claimed else "false", str(k.value),
                       f"ksize({size}) = {k.value} ({cache})", k.rule,
                       short=f"{k.value} ({cache})")

    def measured(self, target: ModelTarget, obs: Observations, *, size: int, claimed: int,
                 **_: Any) -> Finding | None:
        ksize = measured_ksizes(obs).get(size)
        if ksize is None:
            return None
        return Finding("true" if ksize == claimed else "false", str(ksize),
                       f"ksize({size}) = {ksize}", f"kmalloc_sweep/{kmalloc_test(size)}",
                       ksize == target.model.ksize(size).value)


@register
class SmallestKmalloc(Judge):
    """"The smallest kmalloc is one of <claimed>"."""

    name = "smallest_kmalloc"

    def model(self, target: ModelTarget, *, claimed: list[int], **_: Any) -> Finding:
        from kmodlab.claims.explain import min_size_reason

        m = target.model
        smallest = m.KMALLOC_MIN_SIZE
        rule = m.constant("KMALLOC_MIN_SIZE").rule + " + " + m.ksize(1).rule
        return Finding("true" if smallest in claimed else "dated", str(smallest),
                       f"{smallest} bytes (kmalloc-{smallest}): {min_size_reason(m.params)}",
                       rule, short=f"{smallest} bytes")

    def measured(self, target: ModelTarget, obs: Observations, *, claimed: list[int],
                 **_: Any) -> Finding | None:
        const = int_value(obs.values("kmalloc_sweep", "kmalloc_constants"), "KMALLOC_MIN_SIZE")
        ksize1 = measured_ksizes(obs).get(1)
        if const is None or ksize1 is None:
            return None
        m = target.model
        return Finding("true" if ksize1 in claimed else "dated", str(ksize1),
                       f"KMALLOC_MIN_SIZE={const}, ksize(kmalloc(1)) = {ksize1}",
                       "kmalloc_sweep/kmalloc_constants + kmalloc_1_kernel",
                       const == m.KMALLOC_MIN_SIZE and ksize1 == m.ksize(1).value)


def worst_ratio(pairs: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """The (size, ksize) with the largest ksize/size."""
    return max(pairs, key=lambda p: p[1] / p[0], default=None)


def waste_verdict(overall: float, above_min: float, claimed: float) -> str:
    if overall <= claimed:
        return "true"
    return "depends" if above_min <= claimed else "false"


def _ratio(pair: tuple[int, int]) -> str:
    """ksize/size, with enough digits that "just under 2" never prints as 2."""
    n, k = pair
    r = k / n
    if k % n == 0:
        return f"{k // n}x"
    if r < 1.99:
        return f"{r:.2f}x"
    digits = 2
    while round(r, digits) >= 2 and digits < 9:
        digits += 1
    return f"{r:.{digits}f}x"


@register
class MaxWasteRatio(Judge):
    """"kmalloc returns at most <claimed_ratio> times what was asked"."""

    name = "max_waste_ratio"

    @staticmethod
    def model_pairs(m: Model) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(size, ksize) for 1..KMALLOC_MAX_CACHE_SIZE, and the worst size of every page
        order above it (one byte past the previous block: get_order() rounds up)."""
        slab = [(n, m.ksize(n).value) for n in range(1, m.KMALLOC_MAX_CACHE_SIZE + 1)]
        pages = []
        order = m.kmalloc_large_order(m.KMALLOC_MAX_CACHE_SIZE + 1).value or 0
        while (m.PAGE_SIZE << order) <= m.KMALLOC_MAX_SIZE:
            n = max((m.PAGE_SIZE << (order - 1)) + 1, m.KMALLOC_MAX_CACHE_SIZE + 1)
            pages.append((n, m.ksize(n).value))
            order += 1
        return slab, pages

    def model(self, target: ModelTarget, *, claimed_ratio: float, **_: Any) -> Finding:
        m = target.model
        slab, pages = self.model_pairs(m)
        worst = worst_ratio(slab + pages)
        above = worst_ratio(p for p in slab + pages if p[0] > m.KMALLOC_MIN_SIZE)
        slab_above = worst_ratio(p for p in slab if p[0] > m.KMALLOC_MIN_SIZE)
        page_worst = worst_ratio(pages)
        assert worst and above and slab_above and page_worst
        verdict = waste_verdict(worst[1] / worst[0], above[1] / above[0], claimed_ratio)
        answer = (f"kmalloc({worst[0]}) takes {worst[1]} bytes ({_ratio(worst)}); above "
                  f"KMALLOC_MIN_SIZE ({m.KMALLOC_MIN_SIZE}) the slab caches waste at most "
                  f"{_ratio(slab_above)} (kmalloc({slab_above[0]}) -> {slab_above[1]}) and the "
                  f"page blocks approach 2x without reaching it ({_ratio(page_worst)}: "
                  f"kmalloc({page_worst[0]}) -> {page_worst[1]})")
        return Finding(verdict, f"max {_ratio(worst)}; {_ratio(above)} above "
                       f"{m.KMALLOC_MIN_SIZE} B", answer,
                       m.ksize(160).rule.split(" = ")[0] + " + get_order()",
                       short=f"{_ratio(worst)} for kmalloc(1); under 2x above "
                             f"{m.KMALLOC_MIN_SIZE} bytes")

    def measured(self, target: ModelTarget, obs: Observations, *, claimed_ratio: float,
                 **_: Any) -> Finding | None:
        sizes = measured_ksizes(obs)
        if not sizes:
            return None
        m = target.model
        const = int_value(obs.values("kmalloc_sweep", "kmalloc_constants"), "KMALLOC_MIN_SIZE")
        minimum = const if const is not None else m.KMALLOC_MIN_SIZE
        worst = worst_ratio(sizes.items())
        above = worst_ratio(p for p in sizes.items() if p[0] > minimum)
        assert worst and above
        wrong = sorted(n for n, k in sizes.items() if k != m.ksize(n).value)
        agreement = (f"all {len(sizes)} measured ksize values equal the model" if not wrong
                     else f"ksize differs from the model at {wrong}")
        return Finding(waste_verdict(worst[1] / worst[0], above[1] / above[0], claimed_ratio),
                       f"max {_ratio(worst)}; {_ratio(above)} above {minimum} B",
                       f"worst measured: kmalloc({worst[0]}) -> {worst[1]}; above {minimum} B: "
                       f"kmalloc({above[0]}) -> {above[1]}; {agreement}",
                       "kmalloc_sweep/kmalloc_<n>_kernel ksize", not wrong)


@register
class KmallocMax(Judge):
    """"kmalloc cannot allocate more than <claimed> bytes"."""

    name = "kmalloc_max"

    def model(self, target: ModelTarget, *, claimed: int, **_: Any) -> Finding:
        m = target.model
        top = m.constant("KMALLOC_MAX_SIZE")
        p = m.params
        answer = (f"{top.value >> 20} MiB (KMALLOC_MAX_SIZE = PAGE_SIZE << {p.max_page_order}, "
                  f"{p.max_order_name}); slab caches serve up to {m.KMALLOC_MAX_CACHE_SIZE} "
                  "bytes, larger requests take a whole page block, which can fail when memory "
                  "is fragmented")
        return Finding("true" if top.value <= claimed else "dated", size_text(top.value),
                       answer, top.rule, short=f"{top.value >> 20} MiB (KMALLOC_MAX_SIZE)")

    def measured(self, target: ModelTarget, obs: Observations, *, claimed: int,
                 **_: Any) -> Finding | None:
        const = int_value(obs.values("kmalloc_sweep", "kmalloc_constants"), "KMALLOC_MAX_SIZE")
        sizes = measured_ksizes(obs)
        if const is None:
            return None
        largest = max(sizes, default=0)
        verdict = "dated" if largest > claimed else "true"
        return Finding(verdict, f"kmalloc({size_text(largest)}) ok",
                       f"KMALLOC_MAX_SIZE={const}; kmalloc({largest}) succeeded "
                       f"(ksize {sizes.get(largest)})",
                       "kmalloc_sweep/kmalloc_constants + kmalloc_<n>_kernel allocated",
                       const == target.model.KMALLOC_MAX_SIZE)


@register
class KmallocMayFail(Judge):
    """"kmalloc can return NULL: callers must check"."""

    name = "kmalloc_may_fail"

    def model(self, target: ModelTarget, **_: Any) -> Finding:
        return Finding("true", "NULL on failure",
                       "kmalloc() returns NULL when the allocation fails: GFP_KERNEL retries "
                       "and reclaims but still fails (an order above PAGE_ALLOC_COSTLY_ORDER, "
                       "the OOM killer choosing the caller, __GFP_NORETRY, fault injection); "
                       "only __GFP_NOFAIL never returns NULL",
                       "mm/page_alloc.c:__alloc_pages_slowpath() + mm/slub.c:slab_alloc_node()",
                       short="yes, every caller must check")

    def measured(self, target: ModelTarget, obs: Observations, **_: Any) -> Finding | None:
        values = obs.values("failing_allocator", "failing_kmalloc")
        if values is None or "returned_null" not in values:
            return None
        null = values["returned_null"] == 1
        return Finding("true" if null else "false", "NULL" if null else "an object",
                       "kmalloc(64, GFP_KERNEL) with failslab failing the task's slab "
                       f"allocations returned {'NULL' if null else 'an object'}",
                       "failing_allocator/failing_kmalloc", null)
