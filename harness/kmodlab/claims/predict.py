"""The model's answer to one request, as JSON-ready data (``kmodlab model ...``).

Keys are named after the /proc column that shows the value where there is one (``objsize``,
``objperslab``, ``pagesperslab`` from /proc/slabinfo; ``size``, ``pages`` from
/proc/vmallocinfo), so an answer can be laid next to a capture.  Every value travels with the
rule it follows and whether it is exact: ``{"value": 192, "rule": "...", "exact": true}``.
"""

from __future__ import annotations

from typing import Any

from kmodlab.claims.captures import load_capture
from kmodlab.claims.target import ModelTarget
from kmodlab.model import Prediction
from kmodlab.model.model import R_MERGE, R_UNIQUE

Json = dict[str, Any]


def field(pred: Prediction[Any], value: Any = None, *, use_value: bool = False) -> Json:
    """A prediction as ``{"value", "rule", "exact"}`` (+ ``bound``/``reason`` when set).
    ``value`` replaces the prediction's own value when ``use_value`` is set (for a part of a
    composite prediction)."""
    out: Json = {"value": value if use_value else pred.value, "rule": pred.rule,
                 "exact": pred.exact}
    if pred.bound is not None:
        out["bound"] = list(pred.bound)
    if pred.reason:
        out["reason"] = pred.reason
    return out


def ksize_answer(target: ModelTarget, size: int, gfp: str = "GFP_KERNEL") -> Json:
    """ksize(kmalloc(size, gfp)), the cache that serves it and the bytes wasted."""
    m = target.model
    ksize = m.ksize(size, gfp)
    waste = m.kmalloc_waste(size, gfp)
    out: Json = {**target.describe(), "request": {"size": size, "gfp": gfp},
                 "ksize": field(ksize), "cache": field(m.kmalloc_cache_for(size, gfp))}
    order = m.kmalloc_large_order(size)
    if order.value is not None:
        out["order"] = field(order)
    out["waste"] = field(waste, {"bytes": waste.value.bytes,
                                 "percent": round(waste.value.percent, 2)}, use_value=True)
    return out


def merge_fields(target: ModelTarget, size: int, align: int, flags: str, ctor: bool,
                 usersize: int) -> tuple[Json, Json]:
    """``merge`` and ``merge_into``: whether kmem_cache_create() would alias an existing cache,
    and which, among the caches of a stored capture of this kernel (see
    :mod:`kmodlab.claims.captures`) or, without one, the kmalloc caches the model knows."""
    m = target.model
    capture = load_capture(target.release) if target.release else None
    candidates = capture.merge_candidates() if capture else []
    verdict = m.would_merge(size, align, flags, ctor, usersize, existing=candidates)
    v = verdict.value
    merge: Json = {"value": v.can_merge, "rule": R_MERGE, "exact": verdict.exact,
                   "reason": v.reason}
    if v.unique_id:
        merge["unique_id"] = v.unique_id
    into: Json = {"value": v.target, "rule": f"{R_MERGE} + {R_UNIQUE}"}
    if not v.can_merge:
        into.update(exact=True, reason="unmergeable: " + v.reason)
    elif capture is not None:
        into.update(exact=True, candidates=f"slabinfo of {capture.release} captured "
                    f"{capture.taken} ({len(candidates)} mergeable caches)")
        if v.target is None:
            into["reason"] = (f"no cache of class {v.unique_id} in the capture: a new cache "
                              "is created (and later caches of this class merge into it)")
    else:
        into.update(exact=False, candidates="kmalloc caches known to the model (never merge "
                    "targets)",
                    reason=("which caches exist depends on the running kernel; no capture "
                            "of it is stored: run `kmodlab model capture --arch "
                            f"{target.arch} --kernel {target.series}` to use its real "
                            "slabinfo"))
    return merge, into


def cache_answer(target: ModelTarget, size: int, align: int = 0, flags: str = "",
                 ctor: bool = False, usersize: int = 0) -> Json:
    """kmem_cache_create(name, size, align, flags, ctor): the slabinfo columns of the cache
    and whether it would merge."""
    m = target.model
    info = m.kmem_cache(size, align, flags or None, ctor, usersize)
    layout, geometry = info.value.layout, info.value.geometry
    objsize_rule = m.slab_layout(size, align, flags or None, ctor).rule
    order = m.slab_order(layout.size)
    per_slab = m.objects_per_slab(layout.size)
    merge, into = merge_fields(target, size, align, flags or "", ctor, usersize)
    return {
        **target.describe(),
        "request": {"size": size, "align": align, "flags": flags or "0", "ctor": ctor,
                    "usersize": usersize},
        "objsize": field(info, layout.size, use_value=True) | {"rule": objsize_rule},
        "objperslab": field(per_slab),
        "pagesperslab": field(order, geometry.pages, use_value=True)
        | {"rule": f"{order.rule}: 1 << order"},
        "align": {"value": layout.align, "rule": m.calculate_alignment(size, align,
                                                                       flags or None).rule,
                  "exact": True},
        "ksize": {"value": info.value.ksize, "rule": "mm/slab.h:slab_ksize()", "exact": True},
        "merge": merge,
        "merge_into": into,
    }


def vmalloc_answer(target: ModelTarget, size: int) -> Json:
    """vmalloc(size): its /proc/vmallocinfo line(s) and the kmalloc objects it costs."""
    m = target.model
    plan = m.vmalloc(size)
    p = plan.value
    return {
        **target.describe(),
        "request": {"size": size},
        "size": field(m.vmallocinfo_size(size)),
        "pages": field(m.vmalloc_pages(size)),
        "lines": field(m.vmalloc_entries(size)),
        "flags": field(plan, list(p.areas[0].flags) if p.areas else [], use_value=True),
        "page_array_cache": field(plan, p.page_array_cache, use_value=True),
        "vm_struct_cache": field(plan, p.vm_struct_cache, use_value=True),
        "VmallocUsed_pages": field(plan, p.vmalloc_used_pages, use_value=True),
        "kmalloc_objects": field(plan, p.kmalloc_objects, use_value=True),
    }


def pages_answer(target: ModelTarget, order: int) -> Json:
    """alloc_pages(GFP_KERNEL, order): pages, bytes, physical alignment, pcp or buddy path."""
    m = target.model
    pcp = m.is_pcp_order(order)
    p = m.params
    return {
        **target.describe(),
        "request": {"order": order},
        "pages": field(m.pages_for_order(order)),
        "bytes": field(m.bytes_for_order(order)),
        "alignment": field(m.block_alignment(order)),
        "max_order": field(m.max_page_order()),
        "pcp": {"value": pcp, "rule": "mm/page_alloc.c:pcp_allowed_order()", "exact": True,
                "reason": ("served from the per-cpu lists: /proc/buddyinfo usually does not "
                           "change" if pcp else "served from the buddy free lists: "
                           "/proc/buddyinfo shows the split")},
        "kmalloc_sizes": {"value": _kmalloc_range(p.page_size, p.kmalloc_max_cache_size, order),
                          "rule": f"{p.rule_kmalloc_large} + get_order()", "exact": True},
    }


def _kmalloc_range(page_size: int, max_cache: int, order: int) -> list[int] | None:
    """The kmalloc() sizes that land in an order-``order`` block (None: none do)."""
    hi = page_size << order
    lo = max((page_size << (order - 1)) + 1 if order else 1, max_cache + 1)
    return [lo, hi] if lo <= hi else None
